"""Inpainting: a random pixel mask (1 = observed, 0 = missing)."""

from __future__ import annotations

import torch

from ..errors import UserError
from .base import LinearOperator


class Inpaint(LinearOperator):
    """``y = M ⊙ x`` with a random binary mask missing a fraction ``ratio`` of pixels.

    The mask is a deterministic function of ``(seed, H, W)`` (``shared``: one mask for every
    frame and channel) or of ``(seed, frame index, H, W)`` (``perframe``: one per frame,
    shared over channels), so the operator is rebuilt exactly from its spec and seed.
    Self-adjoint. Input and output ``(B, C, T, H, W)``; missing pixels are 0 in ``y``.
    """

    def __init__(self, ratio: float, mode: str = "shared", seed: int = 0):
        super().__init__()
        if not 0.0 <= ratio < 1.0:
            raise UserError(f"inpainting ratio must be in [0, 1), got {ratio}")
        if mode not in ("shared", "perframe"):
            raise UserError(f"unknown inpainting mode {mode!r}; choose shared or perframe")
        self.ratio = float(ratio)
        self.mode = mode
        self.seed = int(seed)
        self.spec = f"inpaint:{ratio:g}" + ("" if mode == "shared" else ":perframe")
        self._cache: dict = {}

    def _frame_mask(self, key_seed: int, h: int, w: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(key_seed)
        return (torch.rand((h, w), generator=g, dtype=torch.float64) >= self.ratio).to(torch.float64)

    def mask(self, t: int, h: int, w: int, *, t0: int = 0) -> torch.Tensor:
        """The mask as a ``(1, 1, T, H, W)`` (perframe) or ``(1, 1, 1, H, W)`` float64 tensor;
        ``t0`` is the absolute index of the first frame (for temporal windows)."""
        key = (self.mode == "perframe" and (t0, t), h, w)
        if key not in self._cache:
            if self.mode == "shared":
                m = self._frame_mask(self.seed, h, w)[None, None, None]
            else:
                m = torch.stack([self._frame_mask(self.seed * 1_000_003 + 7919 * (t0 + i + 1), h, w) for i in range(t)])[None, None]
            self._cache[key] = m
        return self._cache[key]

    def A(self, x):  # noqa: N802
        m = self.mask(x.shape[2], x.shape[3], x.shape[4])
        return x * m.to(dtype=x.dtype, device=x.device)

    A_adjoint = A

    def lift(self, y):
        """Fill missing pixels by normalised Gaussian convolution of the observed ones
        (Knutsson & Westin 1993), repeated at growing scales until every hole is covered."""
        from .blur import gaussian_kernel
        from .functional import spatial_conv

        m = self.mask(y.shape[2], y.shape[3], y.shape[4]).to(dtype=y.dtype, device=y.device).expand_as(y)
        out = y.clone()
        filled = m.clone()
        for sigma in (1.0, 2.0, 4.0, 8.0, 16.0):
            k = gaussian_kernel(sigma)
            if k.shape[0] > min(y.shape[3], y.shape[4]):
                break
            num = spatial_conv(out * filled, k)
            den = spatial_conv(filled, k)
            hole = (filled == 0) & (den > 1e-3)
            out = torch.where(hole, num / den.clamp_min(1e-3), out)
            filled = torch.where(hole, torch.ones_like(filled), filled)
            if bool(filled.all()):
                break
        return out

    def A_dagger(self, y, **kw):  # noqa: N802
        return self.A(y)
