"""Flicker of a stylized video: two numbers, lower is steadier.

* **warping error** (Lai et al. 2018, "Learning Blind Video Temporal
  Consistency", ECCV, §4.1): the mean squared difference, summed over RGB,
  between each output frame and the previous output frame warped onto it by
  the optical flow of the *input* frames, over the pixels that are visible in
  both frames::

      E = 1/(T-1) sum_t  sum_x M_t(x) |O_t(x) - O_{t-1}(x + w_t(x))|^2 / sum_x M_t(x)

  with ``w_t`` the backward flow (frame t to frame t-1) and ``M_t`` the
  non-occlusion mask. Motion the input has is allowed; change the input does
  not explain is flicker.
* **static-region change**: the plain mean absolute difference of
  consecutive output frames (RGB, [0, 1] units) over the pixels that do not
  move in the input (flow under ``STATIC_MOTION`` pixels, and not occluded),
  or over a mask the caller gives. Needs no warping, so it does not depend on
  the flow's accuracy where it matters most: there the flow is zero.

Optical flow: OpenCV's DIS (Kroeger et al. 2016, "Fast Optical Flow using
Dense Inverse Search"), ``PRESET_MEDIUM``, on the luma of the input frames.

Occlusion (Ruder et al. 2016, "Artistic style transfer for videos", GCPR,
§3.2, after Sundaram et al. 2010): a pixel of frame t is excluded where the
forward and backward flows disagree,
``|w + w^(x + w)|^2 > 0.01 (|w|^2 + |w^(x + w)|^2) + 0.5``, with ``w`` the
backward flow at x and ``w^`` the forward flow (t-1 to t) read where ``w``
points; at motion boundaries, ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 +
0.002``; and where ``w`` points outside the frame. Lai et al. compute their
mask the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import cv2
import numpy as np

# Backward flow under this many pixels (in x and y together) counts as static.
STATIC_MOTION = 0.5
# BT.601 luma, as arbitrary_style.evaluation.scorer.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def as_float(frame: np.ndarray) -> np.ndarray:
    """uint8 or float [0, 1] HxWx3 -> float32 [0, 1]."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    return frame.astype(np.float32)


def luma_uint8(frame: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxW uint8 luma, what DIS takes."""
    return np.clip(as_float(frame) @ LUMA * 255.0 + 0.5, 0, 255).astype(np.uint8)


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """DIS flow from ``source`` to ``target`` (HxWx3 frames): [H, W, 2] (dx, dy) with
    ``source(x) ~ target(x + flow(x))``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(luma_uint8(source), luma_uint8(target), None)


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image(x + flow(x))``, bilinear; outside the frame: the nearest edge pixel."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def warp(image: np.ndarray, backward_flow: np.ndarray) -> np.ndarray:
    """Frame t-1's ``image`` moved onto frame t by the backward flow (t to t-1)."""
    return _sample(as_float(image), backward_flow)


def non_occluded(backward_flow: np.ndarray, forward_flow: np.ndarray) -> np.ndarray:
    """[H, W] bool: the pixels of frame t visible in frame t-1 (Ruder et al. 2016's rule)."""
    h, w = backward_flow.shape[:2]
    w_b = backward_flow
    w_f = _sample(forward_flow, backward_flow)
    disagreement = np.sum(np.square(w_b + w_f), axis=-1)
    consistent = disagreement <= 0.01 * (np.sum(w_b**2, -1) + np.sum(w_f**2, -1)) + 0.5
    du_dy, du_dx = np.gradient(w_b[..., 0])
    dv_dy, dv_dx = np.gradient(w_b[..., 1])
    boundary = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * np.sum(w_b**2, -1) + 0.002
    grid_x, grid_y = np.meshgrid(np.arange(w), np.arange(h))
    target_x, target_y = grid_x + w_b[..., 0], grid_y + w_b[..., 1]
    inside = (target_x >= 0) & (target_x <= w - 1) & (target_y >= 0) & (target_y <= h - 1)
    return consistent & ~boundary & inside


@dataclasses.dataclass(frozen=True)
class Motion:
    """The optical flow between two consecutive input frames, both ways, and what it sees."""

    backward: np.ndarray  # [H, W, 2], frame t to frame t-1
    forward: np.ndarray  # [H, W, 2], frame t-1 to frame t
    visible: np.ndarray  # [H, W] bool, pixels of frame t not occluded in frame t-1

    @classmethod
    def between(cls, previous: np.ndarray, current: np.ndarray) -> Motion:
        backward = optical_flow(current, previous)
        forward = optical_flow(previous, current)
        return cls(backward, forward, non_occluded(backward, forward))


@dataclasses.dataclass
class FlickerMeter:
    """Accumulates the two flicker figures over a clip, one frame at a time.

    ``add(input_frame, output_frame)`` in order; ``result()`` gives the means
    over consecutive pairs. Only the previous frame is kept.
    """

    static_motion: float = STATIC_MOTION
    _previous: tuple[np.ndarray, np.ndarray] | None = None
    _warping: list = dataclasses.field(default_factory=list)
    _static: list = dataclasses.field(default_factory=list)

    def add(self, input_frame: np.ndarray, output_frame: np.ndarray, static_mask: np.ndarray | None = None):
        """The next frame pair; ``static_mask`` (HxW bool) overrides the flow's static pixels."""
        output_frame = as_float(output_frame)
        if self._previous is not None:
            previous_input, previous_output = self._previous
            motion = Motion.between(previous_input, input_frame)
            backward, visible = motion.backward, motion.visible
            error = np.sum(np.square(output_frame - warp(previous_output, backward)), axis=-1)
            self._warping.append(float(error[visible].mean()) if visible.any() else np.nan)
            if static_mask is None:
                static_mask = visible & (np.hypot(backward[..., 0], backward[..., 1]) < self.static_motion)
            change = np.abs(output_frame - previous_output).mean(axis=-1)
            self._static.append(float(change[static_mask].mean()) if static_mask.any() else np.nan)
        self._previous = (input_frame, output_frame)

    def result(self) -> dict[str, float]:
        """{'warping_error', 'static_change'}: means over the frame pairs (NaN pairs left out)."""
        def mean(values):
            values = [v for v in values if not np.isnan(v)]
            return float(np.mean(values)) if values else float("nan")

        return {"warping_error": mean(self._warping), "static_change": mean(self._static)}


def flicker(
    inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], static_mask: np.ndarray | None = None
) -> dict[str, float]:
    """``FlickerMeter``'s figures of a whole clip: input and output frames, in order."""
    meter = FlickerMeter()
    for input_frame, output_frame in zip(inputs, outputs, strict=True):
        meter.add(input_frame, output_frame, static_mask)
    return meter.result()


def moving_square_clip(
    background: np.ndarray,
    patch: np.ndarray,
    frames: int,
    *,
    step: int = 3,
    noise: float = 3.0 / 255.0,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """A test clip: a static scene, a square moving across it, sensor-like noise.

    Args:
      background: HxWx3 float [0, 1], the static scene.
      patch: SxSx3 float [0, 1], the moving square (S < H, W).
      frames: clip length.
      step: pixels the square moves right (and half that down) per frame.
      noise: standard deviation of the noise at mid-grey; it grows with the
        square root of the brightness, as shot noise does, and is drawn anew
        for every pixel of every frame.
      seed: of the noise.

    Returns:
      (frames as uint8 HxWx3, the mask of pixels the square never covers).
    """
    rng = np.random.default_rng(seed)
    h, w = background.shape[:2]
    side = patch.shape[0]
    never_covered = np.ones((h, w), bool)
    clip = []
    for t in range(frames):
        frame = np.array(background, np.float32)
        x = min(4 + step * t, w - side)
        y = min(4 + step * t // 2, h - side)
        frame[y : y + side, x : x + side] = patch
        never_covered[max(y - 2, 0) : y + side + 2, max(x - 2, 0) : x + side + 2] = False
        frame = frame + rng.normal(size=frame.shape).astype(np.float32) * noise * np.sqrt(2.0 * frame)
        clip.append((np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return clip, never_covered
