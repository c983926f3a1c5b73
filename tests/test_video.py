"""Video in the stylize command (inference/video.py) and the flicker metric (evaluation/temporal.py).

The clip is made here with PyAV: a static scene, a square moving across it,
sensor-like noise, and an AAC audio track.
"""

from __future__ import annotations

import fractions
import json

import av
import numpy as np
import pytest

from arbitrary_style import images, stylize
from arbitrary_style.data import demo
from arbitrary_style.evaluation import scorer, temporal
from arbitrary_style.inference import video
from arbitrary_style.inference.stylizer import Stylizer

from conftest import synthetic_photo

FRAMES, HEIGHT, WIDTH, RATE = 14, 64, 96, 24
AUDIO_RATE = 16000


@pytest.fixture(scope="module")
def lite():
    return Stylizer.from_pretrained("magenta-lite")


def noisy_clip(frames: int = FRAMES, noise: float = 3 / 255):
    background = synthetic_photo(HEIGHT, WIDTH, 5)
    patch = synthetic_photo(20, 20, 6)[::-1]
    return temporal.moving_square_clip(background, patch, frames, step=3, noise=noise)


def write_clip(path, frames, *, audio: bool = True, video_stream: bool = True) -> None:
    """An H.264 video at RATE frames per second, with a 440 Hz AAC tone as long as the clip."""
    with av.open(str(path), "w") as container:
        if video_stream:
            stream = container.add_stream("libx264", rate=RATE)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "mono"
        if video_stream:
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        if audio:
            samples = len(frames) * AUDIO_RATE // RATE
            tone = np.sin(2 * np.pi * 440 * np.arange(samples) / AUDIO_RATE).astype(np.float32)
            for start in range(0, samples, 1024):
                samples_now = tone[None, start : start + 1024].copy()
                chunk = av.AudioFrame.from_ndarray(samples_now, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = AUDIO_RATE, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    frames, _ = noisy_clip()
    write_clip(folder / "clip.mp4", frames)
    style = folder / "style.png"
    from PIL import Image  # noqa: PLC0415  (only the style image needs it)

    Image.fromarray(np.round(synthetic_photo(64, 64, 7) * 255).astype(np.uint8)).save(style)
    return {"clip": folder / "clip.mp4", "style": style, "folder": folder}


def run(capsys, *argv):
    status = stylize.run(["stylize", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_video_keeps_frames_rate_size_and_audio(capsys, clip_file, tmp_path, lite):
    out = tmp_path / "out.mp4"
    status, stdout, err = run(
        capsys, clip_file["clip"], "-o", out, "--pretrained", "magenta-lite", "--style", clip_file["style"],
        "--json",
    )
    assert status == 0, err
    record = json.loads(stdout)
    assert record["frames"] == FRAMES and record["size"] == [HEIGHT, WIDTH]
    assert "frame/s" in err  # the progress bar's rate
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == FRAMES and decoded[0].shape == (HEIGHT, WIDTH, 3)
    assert stream.average_rate == fractions.Fraction(RATE)
    # Remuxed, not re-encoded: the same AAC packets, byte for byte.
    assert audio_packets(out) == audio_packets(clip_file["clip"])
    # Stylized: far from the input frames.
    original = list(video.read_frames(clip_file["clip"]))
    assert np.abs(decoded[3].astype(float) - original[3]).mean() > 20
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed


def test_cli_video_in_a_folder_with_strength_and_preserve_color(capsys, clip_file, tmp_path):
    status, stdout, err = run(
        capsys, clip_file["clip"], "-o", tmp_path / "out", "--pretrained", "magenta-lite",
        "--style", clip_file["style"], "--strength", "0.5,1", "--preserve_color", "--json",
    )
    assert status == 0, err
    names = sorted(json.loads(line)["output"].rsplit("/", 1)[1] for line in stdout.splitlines())
    assert names == ["clip_style_0.5.mp4", "clip_style_1.mp4"]


def test_bad_videos_are_one_line(capsys, clip_file, tmp_path):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    audio_only = tmp_path / "sound.mp4"
    write_clip(audio_only, noisy_clip(4)[0], video_stream=False)
    model = ["--pretrained", "magenta-lite", "--style", clip_file["style"]]
    cases = [
        ([garbage, "-o", tmp_path / "a.mp4"], "cannot be read"),
        ([audio_only, "-o", tmp_path / "b.mp4"], "has no video stream"),
        ([clip_file["clip"], "-o", tmp_path / "c.xyz"], "FFmpeg writes no video format"),
        ([clip_file["clip"], "-o", tmp_path / "d.webm"], "cannot hold the input's aac audio"),
        ([clip_file["clip"], "-o", tmp_path / "e.png"], "is a video"),
        ([clip_file["clip"], "-o", tmp_path / "f.mp4", "--smooth", "1"], "--smooth 1.0 out of range"),
        ([clip_file["clip"], "-o", tmp_path / "g", "--sheet"], "--sheet with the video"),
    ]
    for argv, message in cases:
        status, _, err = run(capsys, *argv, *model)
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "sound.mp4"]  # nothing written


def test_flicker_metric_is_zero_for_a_steady_output_and_grows_with_noise():
    rng = np.random.default_rng(0)
    scene = (synthetic_photo(HEIGHT, WIDTH, 8) * 255).astype(np.uint8)
    still = [scene] * 6
    steady = [synthetic_photo(HEIGHT, WIDTH, 9)] * 6
    zero = {"warping_error": 0, "static_change": 0}
    assert temporal.flicker(still, steady) == pytest.approx(zero, abs=1e-9)
    noisy = [np.clip(f + rng.normal(0, 0.02, f.shape), 0, 1).astype(np.float32) for f in steady]
    figures = temporal.flicker(still, noisy)
    # Independent figures of i.i.d. noise of sigma s on every pixel: the difference of two
    # frames has variance 2 s^2 per channel (warping error: summed over RGB), and
    # E|N(0, 2 s^2)| = 2 s / sqrt(pi) (a little less here, where the clip clips at 0 and 1).
    assert figures["warping_error"] == pytest.approx(3 * 2 * 0.02**2, rel=0.15)
    assert figures["static_change"] == pytest.approx(2 * 0.02 / np.sqrt(np.pi), rel=0.15)


def test_warping_follows_motion():
    # A scene shifted 2 px right per frame, its "stylization" shifted with it:
    # the flow explains the change, the warping error stays far below the plain change.
    scene = synthetic_photo(HEIGHT, WIDTH + 20, 10)
    inputs = [(scene[:, 20 - 2 * t : 20 - 2 * t + WIDTH] * 255).astype(np.uint8) for t in range(5)]
    outputs = [f.astype(np.float32) / 255 for f in inputs]
    moved = temporal.flicker(inputs, outputs)["warping_error"]
    plain = np.mean([np.sum(np.square(b - a), -1).mean() for a, b in zip(outputs, outputs[1:], strict=False)])
    assert moved < plain / 10


def test_smoothing_halves_flicker_and_keeps_the_content(lite):
    # experiments/flicker's clip (a photograph, 144x192, 24 frames) and one of its styles:
    # on it the defaults measured 0.26x the per-frame warping error; on a
    # smooth synthetic 96x64 scene the margin to 0.5x was too small to test.
    photos = demo.content_images()
    background = images.resize(images.load_image(photos[demo.CONTENT_NAMES.index("coffee")]), (144, 192))
    patch = images.resize(images.load_image(photos[demo.CONTENT_NAMES.index("chelsea")]), (40, 40))
    frames, never_covered = temporal.moving_square_clip(background, patch, 24)
    code = lite.style_code(demo.style_images("heldout")[0])
    results = {}
    for name, settings in {
        "per-frame": dict(smoothing=0, denoise=0, blend=0),
        "defaults": {},
    }.items():
        stylize_frame = video.FrameStylizer(lite, code, **settings)
        outputs = np.stack([stylize_frame(frame) for frame in frames])
        figures = temporal.flicker(frames, outputs)
        figures["never_covered"] = temporal.flicker(frames, outputs, never_covered)["static_change"]
        inputs = np.stack([temporal.as_float(f) for f in frames])
        figures["content_score"] = float(scorer.content_scores(inputs, outputs).mean())
        results[name] = figures
    per_frame, smoothed = results["per-frame"], results["defaults"]
    for key in ("warping_error", "static_change", "never_covered"):
        assert smoothed[key] <= 0.5 * per_frame[key], (key, results)
    assert smoothed["content_score"] == pytest.approx(per_frame["content_score"], rel=0.05)
    assert lite.traces["transfer"] <= 2  # one frame size: compiled once (with and without moments)


def test_statistics_average_pools_frames():
    # Two "frames" with different means: the pooled variance includes the spread of the means,
    # as the statistics of both frames' values together (numpy on the concatenation).
    a, b = np.array([0.0, 2.0]), np.array([4.0, 6.0])
    average = video.ExponentialAverage(0.5)
    for values in (a, b):
        raw = video._raw_moments({"x": (np.array(values.mean()), np.array(values.var()))})
        pooled = video._central_moments(average.update(raw))["x"]
    together = np.concatenate([a, b])
    np.testing.assert_allclose(pooled, (together.mean(), together.var()), rtol=1e-6)


def test_command_line_defaults_equal_the_library():
    assert stylize.DEFAULT_SMOOTHING == video.DEFAULT_SMOOTHING
    assert stylize.DEFAULT_DENOISE == video.DEFAULT_DENOISE
    assert stylize.DEFAULT_BLEND == video.DEFAULT_BLEND
    assert stylize.VIDEO_SUFFIXES == video.VIDEO_SUFFIXES


@pytest.mark.slow
def test_flicker_experiment_runs(tmp_path):
    from experiments.flicker import compare  # noqa: PLC0415  (slow: loads a VGG-16)

    means = compare.main(["--out", str(tmp_path), "--frames", "6", "--styles", "1"])
    assert set(means) == {name for name, *_ in compare.SETTINGS}
    assert (tmp_path / "table.md").exists() and (tmp_path / "frames.png").exists()


def test_image_suffixes_equal_the_image_reader():
    from arbitrary_style.data.decode import IMAGE_EXTENSIONS  # noqa: PLC0415  (the data package is large)

    assert video.IMAGE_SUFFIXES == IMAGE_EXTENSIONS
