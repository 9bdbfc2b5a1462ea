"""Classical (non-learned) video inverse solvers: least squares by CG, and 3-D TV by ADMM.

They are the baselines the diffusion solvers must beat and a fallback that always works.
All take the measurement ``y`` in pixel space and return a pixel-space video
``(B, C, T, H, W)``.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..linalg import conjugate_gradient
from ..ops.base import LinearOperator

Callback = Callable[[dict], None]


def _start(op: LinearOperator, y: torch.Tensor, x0: torch.Tensor | None, init: float | str) -> torch.Tensor:
    if x0 is not None:
        return x0.to(dtype=y.dtype, device=y.device)
    if init == "lift":
        return op.lift(y).clamp(0, 1)
    shape = op.input_shape(tuple(y.shape))
    return torch.full(shape, float(init), dtype=y.dtype, device=y.device)


def solve_cg(
    op: LinearOperator,
    y: torch.Tensor,
    *,
    lam: float = 0.0,
    max_iter: int = 50,
    tol: float = 0.0,
    x0: torch.Tensor | None = None,
    init: float | str = "lift",
    clip: bool = True,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Regularised least squares ``argmin_x ||A x - y||^2 + lam ||x - x0||^2`` by conjugate
    gradient on the normal equations ``(A^T A + lam I) x = A^T y + lam x0`` over the whole
    video (Hestenes & Stiefel 1952). With ``lam = 0`` the iteration count is the only
    regularisation (CG is started at ``x0`` and converges to the least-squares solution
    closest to it; by default ``x0 = op.lift(y)``, e.g. the bicubic upsampling for SR, so the
    null space of ``A`` is filled by interpolation rather than by grey).

    Args:
        op: linear operator.
        y: measurement in pixel units, shape ``op.output_shape(x.shape)``.
        lam: Tikhonov weight (>= 0).
        max_iter: CG iterations (one ``A^T A`` each).
        tol: relative residual tolerance (0: run all iterations).
        x0: starting point and Tikhonov centre, ``(B, C, T, H, W)``.
        init: used when ``x0`` is None: ``"lift"`` (``op.lift(y)``) or a constant grey level.
        clip: clamp the result to ``[0, 1]``.
        callback: called with ``{"i": iteration, "x": current estimate}``.

    Returns:
        The estimate ``(B, C, T, H, W)`` in ``[0, 1]`` (if ``clip``).
    """
    x_start = _start(op, y, x0, init)
    b = op.A_adjoint(y)
    if lam > 0:
        b = b + lam * x_start

    def normal(v):
        out = op.A_adjoint_A(v)
        return out + lam * v if lam > 0 else out

    cb = (lambda i, x: callback({"i": i, "x": x})) if callback else None
    x = conjugate_gradient(normal, b, x_start, max_iter=max_iter, tol=tol, callback=cb)
    return x.clamp(0, 1) if clip else x


# --------------------------------------------------------------------------- 3-D TV


def grad3(x: torch.Tensor) -> torch.Tensor:
    """Forward differences along T, H, W with Neumann boundary: ``(B,C,T,H,W) -> (3,B,C,T,H,W)``."""
    d = x.new_zeros((3,) + tuple(x.shape))
    d[0, :, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    d[1, :, :, :, :-1] = x[:, :, :, 1:] - x[:, :, :, :-1]
    d[2, :, :, :, :, :-1] = x[:, :, :, :, 1:] - x[:, :, :, :, :-1]
    return d


def grad3_adjoint(d: torch.Tensor) -> torch.Tensor:
    """Exact adjoint of :func:`grad3` (minus the divergence)."""
    x = torch.zeros_like(d[0])
    for axis, dim in ((0, 2), (1, 3), (2, 4)):
        g = d[axis]
        n = g.shape[dim]
        head = g.narrow(dim, 0, n - 1)
        x.narrow(dim, 0, n - 1).sub_(head)
        x.narrow(dim, 1, n - 1).add_(head)
    return x


def solve_admm_tv(
    op: LinearOperator,
    y: torch.Tensor,
    *,
    lam: float = 1e-5,
    lam_t: float | None = None,
    rho: float = 1e-2,
    max_iter: int = 40,
    cg_iter: int = 5,
    x0: torch.Tensor | None = None,
    init: float | str = "lift",
    start_lam: float = 0.0,
    clip: bool = True,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Spatio-temporal (3-D, anisotropic) total-variation reconstruction by ADMM.

    ``argmin_x 1/2 ||A x - y||^2 + lam (||D_h x||_1 + ||D_w x||_1) + lam_t ||D_t x||_1``
    (Rudin, Osher & Fatemi 1992 in 3-D; ADMM after Boyd et al. 2011), the ADMM-TV baseline of
    the SVI paper (Kwon & Ye, ICLR 2025). Splitting ``z = D x`` with scaled dual ``u``:

    1. x-update: ``(A^T A + rho D^T D) x = A^T y + rho D^T (z - u)`` by ``cg_iter`` CG steps
       warm-started at the previous ``x``;
    2. z-update: soft-thresholding ``z = S_{lam/rho}(D x + u)`` per axis;
    3. dual update: ``u <- u + D x - z``.

    Args:
        op: linear operator; y: measurement (pixel units).
        lam: spatial TV weight; lam_t: temporal TV weight (default ``lam``).
        rho: ADMM penalty; max_iter: ADMM iterations; cg_iter: CG steps per x-update.
        x0: start (default: ``cg_iter * 4`` CG iterations of least squares, Tikhonov weight
            ``start_lam``, from ``op.lift(y)`` or the grey level ``init``).
        init: see :func:`solve_cg` (used when ``x0`` is None).
        start_lam: Tikhonov weight of that starting CG. 0 (plain least squares) is best for
            noiseless data; with measurement noise and an ill-conditioned operator (e.g. the
            temporal Gaussian PSF) the unregularised start amplifies the noise and the 40 ADMM
            iterations cannot undo it, so :func:`admm_tv_defaults` sets it for noisy data.
        clip: clamp the result to ``[0, 1]``.
        callback: called with ``{"i": iteration, "x": current estimate}``.

    Returns:
        The estimate ``(B, C, T, H, W)``.
    """
    lam_t = lam if lam_t is None else lam_t
    thresholds = torch.tensor([lam_t, lam, lam], dtype=y.dtype, device=y.device).view(3, 1, 1, 1, 1, 1) / rho
    if start_lam < 0:
        raise ValueError(f"start_lam must be >= 0, got {start_lam}")
    x = solve_cg(op, y, lam=start_lam, max_iter=4 * cg_iter, init=init, clip=False) if x0 is None else x0.to(y)
    aty = op.A_adjoint(y)
    z = grad3(x)
    u = torch.zeros_like(z)

    def normal(v):
        return op.A_adjoint_A(v) + rho * grad3_adjoint(grad3(v))

    for i in range(max_iter):
        # 1. x-update (quadratic sub-problem, warm-started CG).
        x = conjugate_gradient(normal, aty + rho * grad3_adjoint(z - u), x, max_iter=cg_iter)
        # 2. z-update: soft-thresholding of D x + u.
        dx = grad3(x)
        v = dx + u
        z = torch.sign(v) * (v.abs() - thresholds).clamp_min(0)
        # 3. scaled dual ascent.
        u = u + dx - z
        if callback:
            callback({"i": i, "x": x})
    return x.clamp(0, 1) if clip else x


#: Tikhonov weight of ADMM-TV's starting CG for noisy measurements (chosen on bigbuckbunny,
#: ``benchmarks/admm_start_sweep.py``; 0 for noiseless data).
NOISY_ADMM_START_LAM = 1e-2


def admm_tv_defaults(sigma_y: float) -> dict:
    """ADMM-TV keyword defaults for measurement noise ``sigma_y`` (``[0, 1]`` pixel units), as
    used by ``vidrestore restore -m admm-tv`` and the benchmarks: TV weight ``1e-5 + 0.4
    sigma_y`` and the starting CG's Tikhonov weight (0 noiseless, :data:`NOISY_ADMM_START_LAM`
    noisy)."""
    sigma_y = float(sigma_y)
    return {"lam": 1e-5 + 0.4 * sigma_y, "start_lam": 0.0 if sigma_y == 0 else NOISY_ADMM_START_LAM}
