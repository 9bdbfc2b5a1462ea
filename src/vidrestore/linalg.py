"""Linear-algebra helpers that depend only on torch: conjugate gradient, power method and a
dot-product adjoint check. Operators (L1) and solvers (L3) both use them, so they live at L0.
"""

from __future__ import annotations

from typing import Callable

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Per-sample inner product over all but the batch dimension, shape [B].
    return (a * b).flatten(1).sum(1)


def conjugate_gradient(
    matvec: Matvec,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    max_iter: int = 50,
    tol: float = 0.0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Solve ``M x = b`` for a symmetric positive (semi-)definite ``M`` by conjugate gradient.

    Hestenes & Stiefel (1952). Each batch element (first dim) is an independent system, so the
    step sizes are per sample. Stops after ``max_iter`` iterations or when every sample's
    relative residual ``||r|| / ||b||`` falls below ``tol``.

    Args:
        matvec: ``x -> M x``, shape-preserving.
        b: right-hand side, any shape ``(B, ...)``.
        x0: starting point (warm start); zeros if ``None``.
        max_iter: number of iterations (each costs one ``matvec``).
        tol: relative residual tolerance; ``0`` runs exactly ``max_iter`` iterations.
        callback: called as ``callback(i, x)`` after each iteration.

    Returns:
        The approximate solution, same shape as ``b``.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = _dot(r, r)
    b_norm2 = _dot(b, b).clamp_min(torch.finfo(b.dtype).tiny)
    tiny = torch.finfo(b.dtype).tiny
    # Samples whose residual reached ``tol`` (or machine precision, even when tol = 0) are
    # frozen: iterating a converged CG further only amplifies rounding noise.
    thresh = max(float(tol), 10 * torch.finfo(b.dtype).eps) ** 2 * b_norm2
    shape = (-1,) + (1,) * (b.ndim - 1)
    for i in range(max_iter):
        active = rs > thresh
        if not bool(active.any()):
            break
        Mp = matvec(p)
        pMp = _dot(p, Mp)
        ok = active & (pMp.abs() > tiny)
        alpha = torch.where(ok, rs / torch.where(ok, pMp, torch.ones_like(pMp)), torch.zeros_like(pMp))
        x = x + alpha.view(shape) * p
        r = r - alpha.view(shape) * Mp
        rs_new = _dot(r, r)
        beta = torch.where(ok, rs_new / torch.where(ok, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = r + beta.view(shape) * p
        rs = torch.where(ok, rs_new, rs)
        if callback is not None:
            callback(i, x)
    return x


def power_method(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> float:
    """Largest eigenvalue of a symmetric PSD ``M`` (e.g. ``A^T A``, giving ``||A||^2``)."""
    x = x0 / x0.norm()
    lam = 0.0
    for _ in range(max_iter):
        y = matvec(x)
        lam_new = float((x * y).sum())
        n = y.norm()
        if float(n) == 0.0:
            return 0.0
        x = y / n
        if abs(lam_new - lam) <= tol * max(abs(lam_new), 1e-30):
            lam = lam_new
            break
        lam = lam_new
    return lam


def adjointness_error(
    A: Matvec,
    A_adjoint: Matvec,
    in_shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> float:
    """Relative error ``|<Ax, y> - <x, A^T y>| / max(|<Ax, y>|, |<x, A^T y>|)`` for random x, y."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = torch.randn(in_shape, dtype=dtype, generator=g)
    Ax = A(x)
    y = torch.randn(Ax.shape, dtype=dtype, generator=g)
    lhs = float((Ax * y).sum())
    rhs = float((x * A_adjoint(y)).sum())
    scale = max(abs(lhs), abs(rhs), 1e-300)
    return abs(lhs - rhs) / scale
