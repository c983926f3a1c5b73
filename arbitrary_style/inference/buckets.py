"""Shape buckets and kernel choice: which programs stylizing a set of images compiles.

XLA compiles one program per input shape. On a CPU that costs about a second
for the plain convolutions and several with the faster CPU kernels of
models/cpu_conv.py, against a tenth of a second to run the lite network on a
photo, so for a few photos compiling is most of the wait. Two choices cut it:

* **Buckets.** An image is padded to a bucket shape and the network computes
  on its real pixels only (``StyleTransferNetwork(region=...)``: reflect
  padding at the image's own edge, instance-norm statistics over its own
  pixels), so the output equals the unpadded one to float rounding, and all
  images of a bucket share one program. Bucket sides come from a ladder
  (``ladder_side``: multiples of 64 up to 1024 px, of 128 above, plus a
  4 px margin); ``plan`` then merges buckets of a known set of images
  while that saves more compilation than the extra pixels cost.
* **Orientation.** The transfer network treats height and width alike
  (square kernels, reflect padding, instance norm, nearest-neighbour
  upsampling), so a portrait image, transposed, runs through a landscape
  program whose kernels are transposed too and gives the transposed output
  (``Stylizer``; to float rounding). With ``transpose``, ``plan`` files
  every size as landscape: a folder of portrait and landscape photos needs
  buckets for one orientation only, and smaller ones.
* **Kernels.** Per bucket, the plain XLA convolutions (cheap to compile, slow
  to run on a CPU) or ``cpu_conv``'s kernels (the reverse), whichever costs
  less in total for the number of images that bucket will run.

Both choices depend only on the image sizes, the network and the backend,
never on timings taken during the run: the same folder stylized again asks
for the same programs, which the persistent compilation cache then holds.
The costs are ``COSTS``, measured by ``python -m
experiments.benchmarks.stylize_compile`` (experiments/benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

# Bucket sides: multiples of LADDER_STEP up to LADDER_COARSE_FROM, of twice
# that above, plus MARGIN: the network's reflect padding at the image's edge
# writes up to 4 pixels beyond it at full resolution (the 9x9 layers; 2 and 1
# at the lower ones), inside the array (``layers.reflect_beyond``).
LADDER_STEP = 64
LADDER_COARSE_FROM = 1024
MARGIN = 4
# Sides below this run at their own size: the region must keep at least two
# pixels at a quarter of the resolution, and small images compile quickly.
MIN_BUCKETED_SIDE = 32
# Merging is quadratic in the number of groups per round; beyond this many
# distinct sizes, each keeps its own program.
MAX_MERGED_SIZES = 64


@dataclasses.dataclass(frozen=True)
class ProgramCost:
    """Seconds to compile a transfer-network program and to run it once, as
    a function of the pixels it takes: ``compile_base + compile_per_mpx * Mpx``
    and ``run_per_mpx * Mpx``, for a program of one image size; a bucket
    program (any size up to its shape) costs ``region_compile`` more seconds to
    compile and runs ``region_run_factor`` times slower per pixel."""

    compile_base: float
    compile_per_mpx: float
    run_per_mpx: float
    region_compile: float
    region_run_factor: float

    def seconds(self, pixels: int, count: int, *, bucketed: bool) -> float:
        """Compiling once and running ``count`` images."""
        mpx = pixels / 1e6
        compile_seconds = self.compile_base + self.compile_per_mpx * mpx
        run_seconds = self.run_per_mpx * mpx
        if bucketed:
            compile_seconds += self.region_compile
            run_seconds *= self.region_run_factor
        return compile_seconds + count * run_seconds


# {backend: {network width alpha: {cpu_conv mode: ProgramCost}}}: the lite
# (0.25) and the paper's (1.0) transfer networks, batch 1, float32.
# CPU: fitted by ``python -m experiments.benchmarks.stylize_compile`` on a
# 2-core AMD EPYC VM, 2026-12-01 (experiments/benchmarks/README.md, "Compile
# or run"); other CPUs scale compile and run times alike, which leaves the
# choices much the same. Accelerators run XLA's convolutions only (cpu_conv's
# "auto" is "xla" there). No accelerator has been measured yet: those rows
# are estimates (a compile of a second or two, runs of milliseconds), under
# which one bucket for all sizes is nearly always best.
COSTS: Mapping[str, Mapping[float, Mapping[str, ProgramCost]]] = {
    "cpu": {
        0.25: {
            "xla": ProgramCost(0.59, 0.0, 0.605, 0.58, 1.06),
            "auto": ProgramCost(1.54, 0.03, 0.18, 0.49, 1.32),
        },
        1.0: {
            "xla": ProgramCost(0.41, 0.49, 5.709, 0.52, 1.02),
            "auto": ProgramCost(1.9, 0.47, 1.256, 0.49, 1.15),
        },
    },
    "accelerator": {
        0.25: {"xla": ProgramCost(1.0, 0.0, 0.002, 0.2, 1.1)},
        1.0: {"xla": ProgramCost(1.5, 0.0, 0.02, 0.2, 1.1)},
    },
}


def costs_for(backend: str, alpha: float, modes: Sequence[str] | None = None) -> dict[str, ProgramCost]:
    """The program costs of a transfer network of width ``alpha`` on ``backend``
    ('cpu', or anything else for an accelerator), for the kernel ``modes`` allowed
    (None: every mode measured there). The nearest measured width stands for others."""
    table = COSTS["cpu" if backend == "cpu" else "accelerator"]
    nearest = min(table, key=lambda measured: abs(measured - alpha))
    costs = dict(table[nearest])
    if modes is not None:
        allowed = {mode: cost for mode, cost in costs.items() if mode in modes}
        # A mode that was not measured (or an accelerator asked for CPU
        # kernels, which it runs as XLA's) costs as the plain convolution.
        costs = allowed or {modes[0]: costs["xla"]}
    return costs


def ladder_side(side: int) -> int:
    """The bucket side for an image side of ``side`` pixels (a multiple of 4)."""
    step = LADDER_STEP if side <= LADDER_COARSE_FROM else 2 * LADDER_STEP
    return -(-side // step) * step + MARGIN


@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled transfer program: its input shape, its kernels, and
    whether images smaller than the shape run in it (a bucket) or only
    images of exactly that shape. ``transposed``: the image this entry is for
    runs transposed (its height along the program's width)."""

    shape: tuple[int, int]
    kernels: str
    bucketed: bool
    transposed: bool = False


def _cheapest(
    costs: Mapping[str, ProgramCost], shape: tuple[int, int], count: int, bucketed: bool
) -> tuple[float, str]:
    """(total seconds, kernel mode) of running ``count`` images in one program."""
    pixels = shape[0] * shape[1]
    return min(
        (cost.seconds(pixels, count, bucketed=bucketed), mode) for mode, cost in sorted(costs.items())
    )


def plan(
    sizes: Iterable[tuple[int, int]],
    costs: Mapping[str, ProgramCost],
    *,
    max_pixels: int | None = None,
    transpose: bool = False,
) -> dict[tuple[int, int], Program]:
    """The program for each content size, for a known set of images.

    Args:
      sizes: (height, width) of every image to stylize, multiples of 4,
        repeated as often as it occurs.
      costs: {mode: ProgramCost} of the modes allowed (``costs_for``).
      max_pixels: no bucket is larger (the caller tiles larger images).
      transpose: plan a size taller than wide as its transpose (the
        program then says ``transposed``).

    Returns:
      {size: Program}. Each size starts with a program of its own; two
      groups of sizes are merged into one bucket program (its sides: the
      ladder sides of the largest member, ``ladder_side``) while that lowers
      the estimated total of compile and run seconds, the largest saving
      first. Every program takes the kernels that cost least for its images.
    """
    sizes = [(int(h), int(w)) for h, w in sizes]

    def landscape(size):
        return (size[1], size[0]) if transpose and size[0] > size[1] else size

    counts = Counter(landscape(size) for size in sizes)
    groups = [(size,) for size in sorted(counts)]

    def shape(group):
        if len(group) == 1:
            return group[0]
        return (ladder_side(max(h for h, _ in group)), ladder_side(max(w for _, w in group)))

    def cost(group):
        return _cheapest(costs, shape(group), sum(counts[s] for s in group), len(group) > 1)

    def bucketable(group):
        merged_shape = shape(group)
        return min(min(size) for size in group) >= MIN_BUCKETED_SIDE and (
            max_pixels is None or merged_shape[0] * merged_shape[1] <= max_pixels
        )

    while 1 < len(groups) <= MAX_MERGED_SIZES:
        best = None
        for a, b in itertools.combinations(groups, 2):
            merged = tuple(sorted(a + b))
            if not bucketable(merged):
                continue
            saving = cost(a)[0] + cost(b)[0] - cost(merged)[0]
            if saving > 0 and (best is None or saving > best[0]):
                best = (saving, a, b, merged)
        if best is None:
            break
        _, a, b, merged = best
        groups = sorted([g for g in groups if g not in (a, b)] + [merged])

    programs = {}
    for group in groups:
        program = Program(shape(group), cost(group)[1], len(group) > 1)
        programs.update({size: program for size in group})
    return {
        size: dataclasses.replace(programs[landscape(size)], transposed=landscape(size) != size)
        for size in sizes
    }
