"""Hierarchical latent warping (HLW) of the predicted clean frames.

Yeh et al., DiffIR2VR-Zero (arXiv 2407.01519), §3.2, Eq. 4:

    x̂0_i <- M · x̂0_i + (1 - M) · W(x̂0_j, f_ij)

with ``M`` the occlusion mask (1 = occluded: keep the frame's own estimate) and ``W`` backward
warping. In the first steps of sampling (default: the first 10 %), per step:

1. *global*: the keyframe of every batch but the first takes, in non-occluded regions, the
   previous batch's (already warped) keyframe estimate warped onto it;
2. *local*: every other frame of the batch takes the keyframe's estimate warped onto it.

Our bundled prior is a pixel-space model, so the "latent" is the pixel-space Tweedie estimate;
for a latent model the same hook runs on the latent grid (flows are resized to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..flow import resize_flow, warp

__all__ = ["LatentWarper", "WarpLink"]


@dataclass
class WarpLink:
    """Replace frame ``dst`` of clip ``clip`` by frame ``src`` warped with ``flow`` where ``mask``.

    Attributes:
        clip: clip index ``b``.
        dst: frame index receiving the warp (time index in the clip).
        src: frame index that is warped.
        flow: ``(1, 2, H, W)`` backward flow of ``dst`` into ``src`` (pixels, valid region).
        mask: ``(1, 1, H, W)`` 1 where ``dst``'s pixel is visible in ``src``.
    """

    clip: int
    dst: int
    src: int
    flow: torch.Tensor
    mask: torch.Tensor


class LatentWarper:
    """``x0_hook`` for the solvers in :mod:`vidrestore.solvers.svi` implementing Eq. 4.

    Args:
        links: the warps in application order (global keyframe links first, each batch's
            keyframe before its frames).
        period: ``(start, end)`` fractions of the steps during which warping is applied:
            step ``i`` of ``N`` is warped when ``int(start N) <= i < int(end N)``
            (released code: ``(0, 0.1)``).
        mode: ``"nearest"`` (released code) or ``"bilinear"`` interpolation.
        strength: ``alpha`` in ``x̂0_i <- x̂0_i + alpha M (W(x̂0_j) - x̂0_i)``; 1 (default) is the
            paper's replacement, ``alpha < 1`` blends the warped estimate with the frame's own
            (an extension, not in the paper).

    Attributes:
        applied: number of steps at which the warps were applied.
    """

    def __init__(self, links: list[WarpLink], period: tuple[float, float] = (0.0, 0.1), mode: str = "nearest",
                 strength: float = 1.0) -> None:
        self.links = links
        self.strength = float(strength)
        self.period = (float(period[0]), float(period[1]))
        self.mode = mode
        self.applied = 0
        self._cache: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def steps(self, num_steps: int) -> range:
        """Step indices at which warping is applied for an ``num_steps``-step sampler."""
        return range(int(self.period[0] * num_steps), int(self.period[1] * num_steps))

    def _resized(self, size: tuple[int, int], device, dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if size not in self._cache:
            out = []
            for ln in self.links:
                fl, mk = ln.flow, ln.mask
                if tuple(fl.shape[-2:]) != size:
                    fl = resize_flow(fl, size)
                    mk = (torch.nn.functional.interpolate(mk, size=size, mode="area") > 0.999).to(mk.dtype)
                out.append((fl.to(device=device, dtype=dtype), mk.to(device=device, dtype=dtype)))
            self._cache[size] = out
        return self._cache[size]

    def __call__(self, info: dict) -> torch.Tensor:
        """Apply the warps to ``info["x0"]`` (``(B, C, T, Hp, Wp)``) at warping steps."""
        x0 = info["x0"]
        if int(info["i"]) not in self.steps(int(info["num_steps"])) or not self.links:
            return x0
        hp, wp = x0.shape[-2:]
        fh, fw = self.links[0].flow.shape[-2:]
        # Pixel-space estimate on a (bottom/right) padded grid: warp the real top-left part.
        # Otherwise (e.g. a latent grid) the flows are resized to the whole grid.
        h, w = (fh, fw) if (fh <= hp and fw <= wp) else (hp, wp)
        x0 = x0.clone()
        for ln, (fl, mk) in zip(self.links, self._resized((h, w), x0.device, x0.dtype)):
            src = x0[ln.clip : ln.clip + 1, :, ln.src, :h, :w]
            dst = x0[ln.clip : ln.clip + 1, :, ln.dst, :h, :w]
            warped = warp(src, fl, mode=self.mode)
            if self.strength != 1.0:
                mk = self.strength * mk
            x0[ln.clip : ln.clip + 1, :, ln.dst, :h, :w] = mk * warped + (1 - mk) * dst
        self.applied += 1
        return x0
