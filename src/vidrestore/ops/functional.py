"""Pure forward/adjoint kernel pairs for video operators.

Every function here takes and returns ``(B, C, T, H, W)`` tensors (or documents otherwise)
and has an exact adjoint named ``<name>_adjoint``. Boundaries are realised with index
gathers (forward) and scatter-adds (adjoint), which makes every boundary rule exactly
adjoint without special cases.

Boundary modes (along one axis of length ``n``):

* ``circular``  — periodic: ``x[-1] = x[n-1]`` (the SVI code's temporal padding).
* ``reflect``   — half-sample symmetric: ``... x1 x0 | x0 x1 ... x(n-1) | x(n-1) x(n-2) ...``
  (``scipy.ndimage`` mode ``'reflect'``, numpy ``'symmetric'``).
* ``replicate`` — edge value repeated (``scipy.ndimage`` ``'nearest'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BOUNDARIES = ("circular", "reflect", "replicate")


def pad_indices(n: int, left: int, right: int, mode: str, device=None) -> torch.Tensor:
    """Source index of every position of an axis of length ``n`` padded by ``left``/``right``.

    Returns a LongTensor of length ``n + left + right`` whose entry ``i`` is the index of
    the original sample that padded position ``i`` copies.
    """
    if mode not in BOUNDARIES:
        raise ValueError(f"unknown boundary {mode!r}; choose one of {', '.join(BOUNDARIES)}")
    i = torch.arange(-left, n + right, device=device)
    if mode == "circular":
        return torch.remainder(i, n)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    # Half-sample symmetric extension has period 2n.
    j = torch.remainder(i, 2 * n)
    return torch.where(j >= n, 2 * n - 1 - j, j)


# ----------------------------------------------------------------------------- temporal


def temporal_filter(x: torch.Tensor, weights: torch.Tensor, boundary: str) -> torch.Tensor:
    """Centred 1-D filter along time with a boundary rule; the frame count is preserved.

    ``y[t] = sum_j w[j] * x[idx(t + j - K//2)]`` for a length-``K`` kernel ``w`` (a
    correlation; the kernels we use are symmetric, so it equals a convolution).

    Args:
        x: ``(B, C, T, H, W)``.
        weights: ``(K,)`` filter taps.
        boundary: ``circular`` | ``reflect`` | ``replicate``.
    """
    k = weights.numel()
    t = x.shape[2]
    idx = pad_indices(t, k // 2, k - 1 - k // 2, boundary, device=x.device)
    # One gather of the padded clip, then k shifted views: two allocations instead of 3k
    # (large temporary allocations dominate the cost on CPU).
    xp = x.index_select(2, idx)
    y = torch.zeros_like(x)
    for j, wj in enumerate(weights.tolist()):
        y.add_(xp[:, :, j : j + t], alpha=wj)
    return y


def temporal_filter_adjoint(y: torch.Tensor, weights: torch.Tensor, boundary: str) -> torch.Tensor:
    """Exact adjoint of :func:`temporal_filter` (scatter-add of the same gathers)."""
    k = weights.numel()
    t = y.shape[2]
    idx = pad_indices(t, k // 2, k - 1 - k // 2, boundary, device=y.device)
    # Adjoint of the k shifted views, then scatter-add the padded frames back (along dim 0 of
    # a time-first view, the fast path of index_add_).
    shape = list(y.shape)
    shape[2] = t + k - 1
    yp = y.new_zeros(shape)
    for j, wj in enumerate(weights.tolist()):
        yp[:, :, j : j + t].add_(y, alpha=wj)
    x = torch.zeros_like(y)
    x.movedim(2, 0).index_add_(0, idx, yp.movedim(2, 0))
    return x


def frame_drop(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Keep frames ``0, K, 2K, ...``: ``(B, C, T, H, W)`` -> ``(B, C, ceil(T/K), H, W)``."""
    return x[:, :, ::factor]


def frame_drop_adjoint(y: torch.Tensor, factor: int, num_frames: int) -> torch.Tensor:
    """Adjoint of :func:`frame_drop`: zero-filled video with ``num_frames`` frames."""
    b, c, _, h, w = y.shape
    x = y.new_zeros((b, c, num_frames, h, w))
    x[:, :, ::factor] = y
    return x


# ----------------------------------------------------------------------------- spatial


def _fold(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), (b, t)

def _unfold(x: torch.Tensor, bt: tuple[int, int]) -> torch.Tensor:
    b, t = bt
    n, c, h, w = x.shape
    return x.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def spatial_conv(x: torch.Tensor, kernel: torch.Tensor, boundary: str = "reflect") -> torch.Tensor:
    """2-D convolution of every frame and channel with an odd-sized kernel.

    True convolution (kernel flipped), centred, so for ``boundary='reflect'`` this equals
    ``scipy.ndimage.convolve(frame, kernel, mode='reflect')``.

    Args:
        x: ``(B, C, T, H, W)``.
        kernel: ``(kh, kw)`` with odd ``kh`` and ``kw``.
    """
    kh, kw = kernel.shape
    xf, bt = _fold(x)
    n, c, h, w = xf.shape
    ih = pad_indices(h, kh // 2, kh // 2, boundary, device=x.device)
    iw = pad_indices(w, kw // 2, kw // 2, boundary, device=x.device)
    xp = xf.index_select(2, ih).index_select(3, iw)
    weight = torch.flip(kernel, (0, 1)).to(dtype=x.dtype, device=x.device).expand(c, 1, kh, kw)
    return _unfold(F.conv2d(xp, weight, groups=c), bt)


def spatial_conv_adjoint(y: torch.Tensor, kernel: torch.Tensor, boundary: str = "reflect") -> torch.Tensor:
    """Exact adjoint of :func:`spatial_conv`."""
    kh, kw = kernel.shape
    yf, bt = _fold(y)
    n, c, h, w = yf.shape
    weight = torch.flip(kernel, (0, 1)).to(dtype=y.dtype, device=y.device).expand(c, 1, kh, kw)
    xp = F.conv_transpose2d(yf, weight, groups=c)  # (n, c, h + kh - 1, w + kw - 1)
    ih = pad_indices(h, kh // 2, kh // 2, boundary, device=y.device)
    iw = pad_indices(w, kw // 2, kw // 2, boundary, device=y.device)
    xw = yf.new_zeros((n, c, h + kh - 1, w)).index_add_(3, iw, xp)
    x = yf.new_zeros((n, c, h, w)).index_add_(2, ih, xw)
    return _unfold(x, bt)


def separable_factors(kernel: torch.Tensor, rtol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(col, row)`` with ``kernel == outer(col, row)`` (float64) when the kernel has rank one
    to within ``rtol`` of its largest singular value (Gaussian and box kernels), else ``None``."""
    k = kernel.detach().to(torch.float64, copy=True).cpu()
    u, sv, vh = torch.linalg.svd(k)
    if sv[0] == 0 or (sv.numel() > 1 and float(sv[1:].max()) > rtol * float(sv[0])):
        return None
    scale = float(sv[0]) ** 0.5
    col, row = u[:, 0] * scale, vh[0] * scale
    if float(torch.outer(col, row).sub(k).abs().max()) > 1e-12 * float(k.abs().max()):
        return None
    return col, row


def _axis_conv(xf: torch.Tensor, taps: torch.Tensor, axis: int, boundary: str) -> torch.Tensor:
    """True 1-D convolution of ``(N, C, H, W)`` along ``axis`` (2: H, 3: W), centred, with the
    index-padding ``boundary`` of :func:`pad_indices`."""
    k, c = taps.numel(), xf.shape[1]
    idx = pad_indices(xf.shape[axis], k // 2, k // 2, boundary, device=xf.device)
    xp = xf.index_select(axis, idx)
    shape = (c, 1, k, 1) if axis == 2 else (c, 1, 1, k)
    weight = torch.flip(taps, (0,)).to(dtype=xf.dtype, device=xf.device).reshape(1, 1, *shape[2:]).expand(shape)
    return F.conv2d(xp, weight, groups=c)


def _axis_conv_adjoint(yf: torch.Tensor, taps: torch.Tensor, axis: int, boundary: str) -> torch.Tensor:
    """Exact adjoint of :func:`_axis_conv`."""
    k, c = taps.numel(), yf.shape[1]
    shape = (c, 1, k, 1) if axis == 2 else (c, 1, 1, k)
    weight = torch.flip(taps, (0,)).to(dtype=yf.dtype, device=yf.device).reshape(1, 1, *shape[2:]).expand(shape)
    xp = F.conv_transpose2d(yf, weight, groups=c)  # the axis grows by k - 1
    idx = pad_indices(yf.shape[axis], k // 2, k // 2, boundary, device=yf.device)
    return yf.new_zeros(yf.shape).index_add_(axis, idx, xp)


def separable_conv(x: torch.Tensor, col: torch.Tensor, row: torch.Tensor, boundary: str = "reflect") -> torch.Tensor:
    """:func:`spatial_conv` with the rank-one kernel ``outer(col, row)``, as two 1-D passes
    (``kh + kw`` instead of ``kh * kw`` multiply-adds per pixel; same values up to rounding)."""
    xf, bt = _fold(x)
    return _unfold(_axis_conv(_axis_conv(xf, col, 2, boundary), row, 3, boundary), bt)


def separable_conv_adjoint(y: torch.Tensor, col: torch.Tensor, row: torch.Tensor, boundary: str = "reflect") -> torch.Tensor:
    """Exact adjoint of :func:`separable_conv`."""
    yf, bt = _fold(y)
    return _unfold(_axis_conv_adjoint(_axis_conv_adjoint(yf, row, 3, boundary), col, 2, boundary), bt)


def box_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``factor x factor`` average pooling: ``(B, C, T, H, W)`` -> ``(B, C, T, H/f, W/f)``."""
    b, c, t, h, w = x.shape
    f = factor
    return x.reshape(b, c, t, h // f, f, w // f, f).mean(dim=(4, 6))


def box_downsample_adjoint(y: torch.Tensor, factor: int) -> torch.Tensor:
    """Adjoint of :func:`box_downsample`: nearest upsampling divided by ``factor**2``."""
    f = factor
    return y.repeat_interleave(f, dim=3).repeat_interleave(f, dim=4) / (f * f)


def separable_matrix(x: torch.Tensor, mh: torch.Tensor, mw: torch.Tensor) -> torch.Tensor:
    """Apply ``Mh`` to rows and ``Mw`` to columns: ``y = Mh @ frame @ Mw^T`` per frame."""
    mh = mh.to(dtype=x.dtype, device=x.device)
    mw = mw.to(dtype=x.dtype, device=x.device)
    return torch.einsum("ih,bcthw,jw->bctij", mh, x, mw)


def separable_matrix_adjoint(y: torch.Tensor, mh: torch.Tensor, mw: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`separable_matrix`: ``x = Mh^T @ frame @ Mw``."""
    mh = mh.to(dtype=y.dtype, device=y.device)
    mw = mw.to(dtype=y.dtype, device=y.device)
    return torch.einsum("ih,bctij,jw->bcthw", mh, y, mw)
