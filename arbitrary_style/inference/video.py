"""Stylizing video: frames streamed from a file through the network into another file.

    from arbitrary_style import Stylizer
    from arbitrary_style.inference import video
    s = Stylizer.from_pretrained("magenta-lite")
    video.stylize_video(s, "clip.mp4", "out.mp4", s.style_code("painting.jpg"))

Reading and writing go through PyAV (FFmpeg's libraries as a Python
binding). Frames are decoded, stylized and encoded one at a time, so memory
does not grow with the clip's length. The output keeps the input's frame
count, each frame's timestamp (hence the frame rate, constant or variable)
and its size; every audio stream is copied through packet by packet
(remuxed, not re-encoded: no generation loss, and no audio encoder needed).
Other streams (subtitles, data) and the rotation metadata of phone clips are
not copied. The output is written to a temporary file next to it and renamed
when complete, so a failed run leaves no half-written video under the
output's name.

Temporal stability (``smoothing``). Stylizing each frame on its own flickers:
the instance norms of the transfer network normalise every frame with its
own mean and variance, and those statistics move with sensor noise and with
any object that moves, so the colours and the texture of static regions
change from frame to frame (Huang et al. 2017, "Real-Time Neural Style
Transfer for Videos", §1, and Gupta et al. 2017, "Characterizing and
Improving Stability in Neural Style Transfer", §3, who trace the instability
to these per-frame statistics). ``smoothing = d`` in (0, 1) normalises every
frame with statistics pooled over the recent frames instead: an exponential
moving average with decay ``d`` of each conditional layer's first and second
moments, ``E[x]`` and ``E[x^2] = var + mean^2``, so the result is the mean
and variance of the recent frames' activations taken together as one image
(the same idea as the tiled path, whose tiles share the statistics of the
whole image; arbitrary_style/inference/tiling.py). Averaging the variances
alone would leave out the spread of the means between frames. The average
starts at the first frame's own statistics. Its memory is about ``1 / (1 -
d)`` frames (10 at the default 0.9, a third of a second at 30 frames per
second); ``smoothing = 0`` is per-frame stylization, as a photo.

The statistics are not all that flickers: the network also answers sensor
noise pixel by pixel, with texture that changes every frame.
``denoise`` filters the input frames over time along the optical flow
before the network sees them, and ``blend`` filters the output frames the
same way (``RecursiveFilter``); experiments/flicker/README.md measures each.

Which statistics are averaged: those that the network computes for the frame
on its own (``Stylizer.norm_moments``, every layer normalised with the
frame's own statistics), not those of a pass whose earlier layers already
use the averages. The average then estimates the statistics the network was
trained with (it always normalised each image with its own), layer by layer,
independently; the other choice would feed each layer's averaging error into
the statistics of the layers after it, and needs the network's forward pass
changed, layer by layer, where the public parts (``norm_moments``,
``transfer``) give the statistics of a whole pass. The cost is one extra pass
per frame without the decoder's output layer (``norm_moments``), about twice
the per-frame time.

``strength != 1`` interpolates with the frame's own style (its embedding, as
for a photo, arbitrary_style/inference/stylizer.py); per frame, that
embedding would flicker too, so with smoothing its conditional-norm
parameters are averaged over frames with the same decay (the heads are
linear in the embedding: averaging parameters is averaging embeddings).

Large frames (over ``max_pixels``, or with ``tile``) go in tiles with the
statistics of the whole frame, downscaled to the budget, as photos do, and
those statistics are the ones averaged.

The per-frame network is the Stylizer's, in parts: conditional-norm
parameters (``Stylizer.norm_params``), statistics (``norm_moments``) and one
pass with given statistics (``transfer``). ``FrameStylizer`` takes the
conditional-norm parameters as the Stylizer makes them and passes them on
unchanged, so parameters that vary over the image would reach every frame
the same way.
"""

from __future__ import annotations

import dataclasses
import fractions
import io
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import av
import jax
import numpy as np
from PIL import Image
from tqdm import tqdm

from arbitrary_style import images
from arbitrary_style.command_line import UserError
from arbitrary_style.evaluation import temporal
from arbitrary_style.inference import color, tiling

# Files with these suffixes are read as video by the stylize command; a file
# with another suffix that Pillow cannot read is probed with FFmpeg.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# Read as images whatever they hold (arbitrary_style.data.decode.IMAGE_EXTENSIONS).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Decay of the running average of the instance-norm statistics: memory of
# about 10 frames; experiments/flicker/README.md measures 0, 0.5, 0.8, 0.9 and 0.95.
DEFAULT_SMOOTHING = 0.9
# Weights of the motion-compensated recursive filters on the input frames
# (denoise) and on the output frames (blend); experiments/flicker/README.md.
DEFAULT_DENOISE = 0.8
DEFAULT_BLEND = 0.5
# Mean absolute RGB difference ([0, 1] units) between a pixel and its
# motion-compensated predecessor at which a filter's weight has fallen to
# 1/e: a larger difference is a change of the scene the flow did not
# explain (an occlusion the consistency check missed, a light switched on),
# and the pixel is taken from the current frame. Sensor noise of a few
# levels in 255 stays far below the input's; a stylized texture moves more
# between frames than a photograph, hence the output's larger value.
DENOISE_TOLERANCE = 0.1
BLEND_TOLERANCE = 0.2
# Video encoders in the order tried for an output container: the first one
# FFmpeg accepts for that container is used (H.264 for .mp4 .mov .mkv .avi,
# VP9 for .webm, GIF for .gif). x264's constant quality 18 is "visually
# lossless or nearly so" (FFmpeg's H.264 encoding guide).
VIDEO_ENCODERS = ("libx264", "h264", "libopenh264", "libvpx-vp9", "libvpx", "libsvtav1", "mpeg4", "gif")
ENCODER_OPTIONS = {"libx264": {"crf": "18"}, "libvpx-vp9": {"crf": "24", "b": "0"}}


class VideoError(UserError):
    """A video that cannot be read or written; the message says which file and what to do."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What stylizing a video keeps."""

    width: int
    height: int
    frames: int | None  # from the container's header; None when it does not say
    rate: fractions.Fraction | None  # frames per second (average), None when unknown
    audio_streams: int


def _open_input(path: str | os.PathLike):
    try:
        container = av.open(os.fspath(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoError(
            f"video {os.fspath(path)} cannot be read, FFmpeg says: {error}, "
            "check that it is a complete video file"
        ) from None
    if not any(s.codec_context.width and s.codec_context.height for s in container.streams.video):
        container.close()
        raise VideoError(
            f"video {os.fspath(path)} has no video stream, there are no frames to stylize, "
            "give a file with a video stream"
        )
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """The size, frame count, rate and audio streams of the video at ``path``.

    Raises:
      VideoError: a file FFmpeg cannot read, or one without a video stream.
    """
    with _open_input(path) as container:
        stream = container.streams.video[0]
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=stream.frames or None,
            rate=stream.average_rate or stream.guessed_rate,
            audio_streams=len(container.streams.audio),
        )


def is_video(path: str | os.PathLike) -> bool:
    """Whether the stylize command treats the file at ``path`` as a video.

    By its suffix (``VIDEO_SUFFIXES``); a file with an image suffix
    (``IMAGE_SUFFIXES``) never is; a file with another suffix is a video when
    Pillow cannot read it and FFmpeg finds a video stream with a size in it.
    (Not FFmpeg first: it also reads PNG and JPEG files, as one-frame videos,
    and takes a corrupt JPEG for a 0x0 one.)
    """
    path = pathlib.Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    try:
        with Image.open(path):
            return False
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    try:
        with av.open(os.fspath(path)) as container:
            return any(s.codec_context.width and s.codec_context.height for s in container.streams.video)
    except (av.FFmpegError, OSError, ValueError):
        return False


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of the first video stream, one at a time: uint8 HxWx3 RGB."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def output_format(path: str | os.PathLike) -> str:
    """FFmpeg's name of the container format for ``path``'s suffix ('mp4', 'matroska', ...).

    Raises:
      VideoError: no FFmpeg muxer writes that suffix.
    """
    suffix = pathlib.Path(path).suffix.lower().lstrip(".")
    names = sorted(
        name
        for name in av.formats_available
        if (fmt := av.ContainerFormat(name)).is_output and suffix in (fmt.extensions or ())
    )
    if not suffix or not names:
        raise VideoError(
            f"output {os.fspath(path)}: FFmpeg writes no video format with the suffix "
            f"{'.' + suffix if suffix else '(none)'}, give -o a file ending in "
            f"{' '.join(VIDEO_SUFFIXES)}"
        )
    return suffix if suffix in names else names[0]


def _pixel_format(encoder: str, width: int, height: int) -> str:
    """4:2:0 where the encoder and an even size allow (what players expect), else 4:4:4, else its first."""
    formats = [f.name for f in av.Codec(encoder, "w").video_formats or ()]
    for name in ("yuv420p", "yuv444p"):
        if name in formats and (name != "yuv420p" or (width % 2 == 0 and height % 2 == 0)):
            return name
    return formats[0] if formats else "yuv420p"


def _add_video_stream(container, encoder: str, rate, width: int, height: int):
    stream = container.add_stream(encoder, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = _pixel_format(encoder, width, height)
    stream.options = dict(ENCODER_OPTIONS.get(encoder, {}))
    return stream


def _try_writing(format_name: str, encoder: str, audio_templates, width: int, height: int) -> bool:
    """Whether FFmpeg writes a one-frame video of ``encoder`` (and copies of the audio
    streams) in ``format_name``: the container's header and one frame, in memory."""
    if encoder not in av.codecs_available:
        return False
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as container:
            stream = _add_video_stream(container, encoder, 25, width, height)
            for template in audio_templates:
                container.add_stream_from_template(template)
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode()]:
                container.mux(packet)
    except (av.FFmpegError, ValueError, OSError):
        return False
    return True


def choose_encoder(destination: str | os.PathLike, source: str | os.PathLike) -> str:
    """The video encoder for ``destination`` (``VIDEO_ENCODERS``, the first that fits its
    container at ``source``'s size, with ``source``'s audio copied).

    Raises:
      VideoError: ``source`` unreadable; a suffix FFmpeg does not write; no
        encoder for that container and size; audio that container cannot hold.
    """
    format_name = output_format(destination)
    with _open_input(source) as container:
        video = container.streams.video[0]
        width, height = video.codec_context.width, video.codec_context.height
        audio = list(container.streams.audio)
        for encoder in VIDEO_ENCODERS:
            if _try_writing(format_name, encoder, [], width, height):
                break
        else:
            raise VideoError(
                f"output {os.fspath(destination)}: no video encoder of this FFmpeg writes "
                f"{format_name} at {width}x{height}, give -o a .mp4 or .mkv file"
            )
        if audio and not _try_writing(format_name, encoder, audio, width, height):
            codecs = ", ".join(sorted({a.codec_context.name for a in audio}))
            raise VideoError(
                f"output {os.fspath(destination)}: the {format_name} format cannot hold the "
                f"input's {codecs} audio, which is copied unchanged, give -o a .mkv file "
                "(Matroska holds any audio) or a .mp4 file"
            )
    return encoder


# -- temporal smoothing of the instance-norm statistics -------------------


class ExponentialAverage:
    """An exponential moving average of pytrees of arrays: ``a <- d * a + (1 - d) * x``.

    Starts at the first value (no bias toward zero); ``decay`` 0 returns each
    value as given.
    """

    def __init__(self, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"smoothing {decay} out of range, it is a decay in [0, 1), give e.g. 0.9")
        self.decay = float(decay)
        self.value = None

    def update(self, tree):
        if self.value is None or self.decay == 0.0:
            self.value = tree
        else:
            d = self.decay
            self.value = jax.tree.map(lambda a, x: d * a + (1.0 - d) * x, self.value, tree)
        return self.value


def _raw_moments(moments: dict) -> dict:
    """{layer: (mean, var)} -> {layer: (E[x], E[x^2])}: moments that average over frames.

    In float64: ``E[x^2] - E[x]^2`` cancels where the mean is large against
    the spread, and float32 would lose the variance there.
    """
    moments = jax.device_get(moments)
    return {
        name: (np.float64(mean), np.float64(var) + np.square(np.float64(mean)))
        for name, (mean, var) in moments.items()
    }


def _central_moments(raw: dict) -> dict:
    """{layer: (E[x], E[x^2])} -> {layer: (mean, var)} in float32; var >= 0 up to rounding."""
    return {
        name: (m1.astype(np.float32), np.maximum(m2 - m1 * m1, 0.0).astype(np.float32))
        for name, (m1, m2) in raw.items()
    }


class RecursiveFilter:
    """A motion-compensated recursive filter: ``y_t = x_t + k (warp(y_{t-1}) - x_t)``.

    The previous result is moved onto the current frame by the optical flow
    of the input frames and blended with weight ``k = weight * M *
    exp(-(r / tolerance)^2)``, where ``M`` excludes occluded pixels (the
    flicker metric's rule, arbitrary_style/evaluation/temporal.py) and ``r``
    is the mean absolute difference of the two at that pixel. This is the
    classic temporal noise filter of video (Dubois and Sabri 1984, "Noise
    Reduction in Image Sequences Using Motion-Compensated Temporal
    Filtering", IEEE Trans. Communications): on static and tracked pixels it
    averages over about ``(1 + weight) / (1 - weight)`` frames, and where
    the flow fails it keeps the current frame. On the input frames it removes
    the sensor noise to which the network responds with flickering texture;
    on the output frames it carries the previous frame's texture along the
    motion (the flow-based blending that Lai et al. 2018 §2 review as Bonneel
    et al. 2015's baseline). ``weight`` 0 passes frames through.
    """

    def __init__(self, weight: float, tolerance: float):
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"filter weight {weight} out of range, give a value in [0, 1), 0 for none")
        self.weight = float(weight)
        self.tolerance = float(tolerance)
        self.previous = None

    def __call__(self, frame: np.ndarray, motion: temporal.Motion | None) -> np.ndarray:
        """The filtered frame (float32 [0, 1]); ``motion`` from the previous input frame
        to this one (None for the first frame)."""
        x = temporal.as_float(frame)
        if self.weight and motion is not None and self.previous is not None:
            predicted = temporal.warp(self.previous, motion.backward)
            difference = np.abs(predicted - x).mean(axis=-1)
            k = self.weight * motion.visible * np.exp(-np.square(difference / self.tolerance))
            x = x + k[..., None] * (predicted - x)
        self.previous = x
        return x


class FrameStylizer:
    """Stylizes the frames of one clip in order, keeping the statistics between frames.

    Args:
      stylizer: an ``inference.stylizer.Stylizer``.
      style: the style as ``stylizer.style_code`` takes it (a code is fastest:
        the predictor runs once).
      strength: identity interpolation (arbitrary model; see the module docstring).
      style_size: the style's shorter side at the predictor (and the frame's,
        for ``strength != 1``); None for the pixels as given.
      smoothing: decay of the statistics' running average; 0 for per-frame.
      denoise: weight of the motion-compensated recursive filter on the
        input frames (``RecursiveFilter``); 0 for none.
      blend: weight of the same filter on the output frames; 0 for none.
      resize: the frame's shorter side at the network (None: as given); the
        result is resized back to the frame's size.
      preserve_color: keep each frame's colours (inference/color.py).
      tile, overlap, max_pixels: as ``Stylizer.stylize``.
    """

    def __init__(
        self,
        stylizer,
        style,
        *,
        strength: float = 1.0,
        style_size: int | None = 256,
        smoothing: float = DEFAULT_SMOOTHING,
        denoise: float = DEFAULT_DENOISE,
        blend: float = DEFAULT_BLEND,
        resize: int | None = None,
        preserve_color: bool = False,
        tile: int | None = None,
        overlap: int | None = None,
        max_pixels: int | None = None,
    ):
        # Deferred: the stylizer module's defaults, with the Stylizer the caller built.
        from arbitrary_style.inference import stylizer as stylizer_module  # noqa: PLC0415

        if not np.isfinite(strength) or strength < 0:
            raise ValueError(f"strength must be finite and >= 0, got {strength}")
        if strength != 1.0 and not stylizer.takes_style_images:
            raise ValueError(
                f"strength {strength} needs a model with a style predictor; this is {stylizer!r}"
            )
        self.stylizer = stylizer
        self.norm_params = stylizer.norm_params(style, style_size=style_size)
        self.strength = float(strength)
        self.style_size = style_size
        self.resize = resize
        self.preserve_color = preserve_color
        self.max_pixels = stylizer_module.DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        self.tile = tile
        self.overlap = stylizer_module.DEFAULT_OVERLAP if overlap is None else int(overlap)
        self.default_tile = stylizer_module.DEFAULT_TILE
        self.moments_average = ExponentialAverage(smoothing)
        self.own_style_average = ExponentialAverage(smoothing)
        self.input_filter = RecursiveFilter(denoise, DENOISE_TOLERANCE)
        self.output_filter = RecursiveFilter(blend, BLEND_TOLERANCE)
        self.previous_frame = None
        self.frames = 0

    def _params_at_strength(self, x: np.ndarray):
        if self.strength == 1.0:
            return self.norm_params
        # The frame as a style image, as Stylizer.stylize takes P(content).
        if self.style_size is None:
            seen = tiling.downscale_for_statistics(x, self.max_pixels, images.resize)
        else:
            seen = x
        own = self.own_style_average.update(self.stylizer.norm_params(seen, style_size=self.style_size))
        s = self.strength
        # Interpolating the parameters is interpolating the embeddings: the heads are linear.
        return jax.tree.map(lambda o, t: (1.0 - s) * o + s * t, own, self.norm_params)

    def _moments(self, image: np.ndarray, params) -> dict:
        """The running average of the statistics, updated with ``image``'s own."""
        own = _raw_moments(self.stylizer.norm_moments(image, params))
        return _central_moments(self.moments_average.update(own))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The next frame (HxWx3, uint8 or float in [0, 1]) -> float32 HxWx3 in [0, 1]."""
        original = images.load_image(frame)
        motion = None
        if (self.input_filter.weight or self.output_filter.weight) and self.previous_frame is not None:
            motion = temporal.Motion.between(self.previous_frame, original)
        self.previous_frame = original
        filtered = self.input_filter(original, motion)
        x = filtered if self.resize is None else images.resize_shorter_side(original, self.resize)
        h, w = x.shape[:2]
        params = self._params_at_strength(x)
        padded = tiling.pad_to_multiple(x)
        tiled = self.tile is not None or h * w > self.max_pixels
        if not tiled and self.moments_average.decay == 0.0:
            # Per frame: the frame's own statistics, computed in the same pass.
            out = self.stylizer.transfer(padded, params)
        elif not tiled:
            moments = self._moments(padded, params)
            out = self.stylizer.transfer(padded, params, moments=moments)
        else:
            # The statistics of the whole frame, downscaled to the budget, as for a photo.
            small = tiling.downscale_for_statistics(padded, self.max_pixels, images.resize)
            moments = self._moments(small, params)
            side = self.default_tile if self.tile is None else self.tile
            overlap = self.overlap
            if overlap >= min(side, *padded.shape[:2]):
                overlap = min(side, *padded.shape[:2]) // 4 // 4 * 4
            out = tiling.stylize_in_tiles(
                lambda crop: self.stylizer.transfer(crop, params, moments=moments),
                padded, tile=side, overlap=overlap,
            )
        out = images.resize(out[:h, :w], original.shape[:2])
        if self.preserve_color:
            out = color.preserve_color(filtered, out)
        out = self.output_filter(out, motion)
        self.frames += 1
        return np.asarray(out, np.float32)


# -- the file-to-file path --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VideoResult:
    frames: int
    seconds: float
    info: VideoInfo


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, rounded as ``images.save_image`` rounds."""
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def transcode(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    process_frame: Callable[[np.ndarray], np.ndarray],
    *,
    encoder: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Writes ``destination``: every frame of ``source`` through ``process_frame``
    (uint8 HxWx3 -> float [0, 1] or uint8, same size), same timestamps, audio copied.

    Streams: packets are read in the file's order, video frames decoded,
    processed and encoded one at a time, audio packets remuxed as they come.
    Written to a temporary file in the destination's folder, renamed at the
    end; removed on failure. Returns the number of frames written.
    """
    destination = pathlib.Path(destination)
    format_name = output_format(destination)
    encoder = encoder or choose_encoder(destination, source)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=f".partial{destination.suffix}", dir=destination.parent
    )
    os.close(handle)
    # mkstemp makes the file private (0600); the output gets the permissions
    # any new file of this process gets (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    count = 0
    try:
        with _open_input(source) as reader, av.open(temporary, "w", format=format_name) as writer:
            video_in = reader.streams.video[0]
            video_in.thread_type = "AUTO"
            width, height = video_in.codec_context.width, video_in.codec_context.height
            rate = video_in.average_rate or video_in.guessed_rate or 25
            video_out = _add_video_stream(writer, encoder, rate, width, height)
            # The input's clock: each frame keeps its timestamp (and so the rate,
            # constant or variable).
            video_out.codec_context.time_base = video_in.time_base
            audio = {s.index: writer.add_stream_from_template(s) for s in reader.streams.audio}
            for packet in reader.demux(video_in, *reader.streams.audio):
                if packet.stream.index in audio:
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = audio[packet.stream.index]
                    writer.mux(packet)
                    continue
                for frame in packet.decode():
                    array = process_frame(frame.to_ndarray(format="rgb24"))
                    if array.dtype != np.uint8:
                        array = to_uint8(array)
                    out = av.VideoFrame.from_ndarray(array, format="rgb24")
                    out.pts = frame.pts if frame.pts is not None else count
                    out.time_base = video_in.time_base
                    writer.mux(video_out.encode(out))
                    count += 1
                    if on_frame is not None:
                        on_frame(count)
            writer.mux(video_out.encode())
        os.replace(temporary, destination)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return count


def stylize_video(
    stylizer,
    source: str | os.PathLike,
    destination: str | os.PathLike,
    style,
    *,
    progress: bool = True,
    **options,
) -> VideoResult:
    """Stylizes the video ``source`` into ``destination`` (its suffix picks the format).

    ``style`` and ``options`` as ``FrameStylizer`` (``smoothing``,
    ``strength``, ``preserve_color``, ...). With ``progress``, a bar on stderr
    with frames per second.

    Raises:
      VideoError: an unreadable source, a source without video, a
        destination format FFmpeg does not write or that cannot hold the audio.
    """
    info = probe(source)
    encoder = choose_encoder(destination, source)
    frame_stylizer = FrameStylizer(stylizer, style, **options)
    start = time.perf_counter()
    with tqdm(
        total=info.frames, desc=pathlib.Path(source).name, unit="frame", file=sys.stderr, disable=not progress
    ) as bar:
        count = transcode(
            source, destination, frame_stylizer, encoder=encoder, on_frame=lambda _: bar.update(1)
        )
    return VideoResult(frames=count, seconds=time.perf_counter() - start, info=info)
