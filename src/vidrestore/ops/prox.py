"""Exact proximal solves ``(I + gamma A^T A) v = rhs`` for operators with a separable eigenbasis.

Most operators of :mod:`vidrestore.ops` act on one axis of the video at a time: temporal
blurs, frame dropping and frame selection are matrices along ``T``; separable spatial blurs,
downsampling (box or bicubic) and crops are one matrix along ``H`` and one along ``W``. For a
chain of such factors ``A = (M_t ⊗ M_h ⊗ M_w)`` (factors on different axes commute), so

    A^T A = (M_t^T M_t) ⊗ (M_h^T M_h) ⊗ (M_w^T M_w),

and the three small symmetric Gram matrices have orthonormal eigenbases ``Q_t, Q_h, Q_w``
with eigenvalues ``l_t, l_h, l_w``. In the basis ``Q = Q_t ⊗ Q_h ⊗ Q_w`` the proximal system
is diagonal:

    v = Q diag(1 / (1 + gamma l_t[k] l_h[i] l_w[j])) Q^T rhs,

an exact direct solve (to rounding) at the cost of one transform into the basis and one back.
It plays the role of the FFT closed form of Zhao et al., "Fast Single Image Super-Resolution
Using a New Analytical Solution for l2-l2 Problems" (IEEE TIP 2016), which USRNet (Zhang,
Van Gool & Timofte, CVPR 2020) uses as its data step, and which assumes circular blur and
decimation; taking each axis' own eigenbasis instead of the DFT makes the solve exact for
every boundary rule and for any chain of blurs and decimations along an axis. For a symmetric kernel with the ``circular`` boundary the eigenbasis is a Fourier basis,
with the ``reflect`` (half-sample symmetric) boundary it is the DCT-II basis (Martucci, "Symmetric
convolution and the discrete sine and cosine transforms", IEEE TSP 1994); ``replicate`` and
non-symmetric kernels have no fast transform but still a small exact eigenbasis.

An inpainting mask is diagonal in the pixel basis: alone (shared or per frame) or combined
with temporal factors when it is shared by all frames (``A^T A = (M_t^T M_t) ⊗ diag(m)``) it is
solved exactly as well. Everything else (a per-frame mask with a temporal factor, a mask
together with a spatial factor, non-separable spatial kernels, unknown operator types) has
no such basis here: :func:`prox_solver` returns ``None`` and callers use conjugate gradient.

Cost of a solve: ``2 (T + H + W)`` multiply-adds per pixel (dense transforms along each
axis), plus a one-off ``eigh`` of each Gram matrix at construction. That is cheap at the
frame sizes of a diffusion prior (64-256 pixels) and grows linearly with the side length.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import functional as Fn
from .base import Composition, Identity, LinearOperator, record_exact_solve
from .blur import SpatialBlur
from .mask import Inpaint
from .resize import Downsample, bicubic_matrix
from .temporal import FrameDrop, TemporalBlur
from .window import FrameSelect, SpatialCrop

__all__ = ["SpectralProx", "prox_solver"]

_F64 = torch.float64


def _eye(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=_F64)


def temporal_matrix(op: TemporalBlur, n: int) -> torch.Tensor:
    """``(n, n)`` matrix of a temporal blur on ``n`` frames (columns = responses to unit frames)."""
    basis = _eye(n).reshape(n, 1, n, 1, 1)
    return Fn.temporal_filter(basis, op.weights, op.boundary)[:, 0, :, 0, 0].T.contiguous()


def axis_conv_matrix(taps: torch.Tensor, n: int, boundary: str) -> torch.Tensor:
    """``(n, n)`` matrix of the centred 1-D convolution used by separable spatial blurs."""
    basis = _eye(n).reshape(n, 1, n, 1)
    return Fn._axis_conv(basis, taps.to(_F64), 2, boundary)[:, 0, :, 0].T.contiguous()


def box_matrix(n: int, factor: int) -> torch.Tensor:
    """``(n // f, n)`` matrix of ``f``-sample averaging along one axis (one factor of box SR)."""
    m = torch.zeros((n // factor, n), dtype=_F64)
    for i in range(n // factor):
        m[i, i * factor : (i + 1) * factor] = 1.0 / factor
    return m


def _gram_eig(m: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Orthonormal eigenbasis and eigenvalues (clamped at 0) of ``m^T m``; ``(None, None)`` for
    the identity (no factor on that axis)."""
    if m is None:
        return None, None
    lam, q = torch.linalg.eigh(m.T @ m)
    return q.contiguous(), lam.clamp_min(0.0)


class SpectralProx:
    """Exact solver of ``(I + gamma A^T A) v = rhs`` for ``A^T A = Q diag(lam) Q^T`` with
    ``Q = Q_t ⊗ Q_h ⊗ Q_w`` (see the module docstring; build it with :func:`prox_solver`).

    Args:
        q_t, q_h, q_w: Orthonormal ``(T, T)``, ``(H, H)``, ``(W, W)`` bases (float64; columns
            are basis vectors), or ``None`` for the identity on that axis.
        lam: Eigenvalues of ``A^T A`` in that basis, a float64 tensor broadcastable to
            ``(T, H, W)``, all ``>= 0``.
        spec: Spec of the operator (for messages).
    """

    def __init__(self, q_t: torch.Tensor | None, q_h: torch.Tensor | None, q_w: torch.Tensor | None, lam: torch.Tensor, spec: str = "?"):
        self.q = (q_t, q_h, q_w)
        self.lam = lam.to(_F64)
        self.spec = spec
        self._cache: dict = {}

    def _cast(self, like: torch.Tensor):
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = (
                tuple(None if q is None else q.to(dtype=like.dtype, device=like.device) for q in self.q),
                self.lam.to(dtype=like.dtype, device=like.device),
            )
        return self._cache[key]

    @staticmethod
    def _transform(x: torch.Tensor, qs, inverse: bool) -> torch.Tensor:
        # Forward: coefficients Q^T x along each axis; inverse: Q c. (B, C, T, H, W) throughout.
        q_t, q_h, q_w = qs
        if q_t is not None:
            x = torch.einsum("bcthw,tk->bckhw", x, q_t) if not inverse else torch.einsum("bckhw,tk->bcthw", x, q_t)
        if q_h is not None:
            x = torch.matmul(q_h.T, x) if not inverse else torch.matmul(q_h, x)
        if q_w is not None:
            x = torch.matmul(x, q_w) if not inverse else torch.matmul(x, q_w.T)
        return x

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T A x`` through the eigenbasis (for checks; not counted as operator applications)."""
        qs, lam = self._cast(x)
        return self._transform(self._transform(x, qs, False) * lam, qs, True)

    def __call__(self, rhs: torch.Tensor, gamma: float) -> torch.Tensor:
        """The solution ``v`` of ``(I + gamma A^T A) v = rhs``; ``rhs`` is ``(B, C, T, H, W)``
        on the operator's input grid, ``gamma >= 0``. Counted by
        :func:`~vidrestore.ops.count_applications` as two applications (see
        :func:`~vidrestore.ops.base.record_exact_solve`)."""
        qs, lam = self._cast(rhs)
        record_exact_solve()
        c = self._transform(rhs, qs, False)
        return self._transform(c / (1.0 + float(gamma) * lam), qs, True)


def _factors(op: LinearOperator) -> list[LinearOperator]:
    return list(op.ops) if isinstance(op, Composition) else [op]


def prox_solver(op: LinearOperator, in_shape: Sequence[int]) -> SpectralProx | None:
    """An exact solver of ``(I + gamma A^T A) v = rhs`` for ``op`` on inputs of ``in_shape``,
    or ``None`` when ``op`` has no separable eigenbasis here (then use conjugate gradient).

    Supported: chains of temporal blurs (any kernel and boundary), frame dropping and frame
    selection, separable spatial blurs (any boundary; Gaussian and box kernels), box or bicubic
    downsampling, spatial crops and identities; or an inpainting mask, alone or (when shared
    by all frames) with temporal factors. See the module docstring for why these are exact.

    Args:
        op: Linear operator (a single operator or a :class:`~vidrestore.ops.Composition`).
        in_shape: ``(B, C, T, H, W)`` of the unknown video.

    Returns:
        A :class:`SpectralProx`, or ``None``.

    Example:
        >>> from vidrestore.ops import parse
        >>> prox_solver(parse("tblur:uniform:7:reflect,sr:4"), (1, 3, 8, 32, 32)) is not None
        True
        >>> prox_solver(parse("tblur:uniform:7:reflect,inpaint:0.5:perframe"), (1, 3, 8, 32, 32)) is None
        True
    """
    _, _, t, h, w = (int(s) for s in in_shape)
    m_t = m_h = m_w = None  # accumulated axis matrices (None = identity so far)
    mask = None
    temporal = spatial = False

    def chain(m_acc, m_new):
        return m_new if m_acc is None else m_new @ m_acc

    for o in _factors(op):
        kind = type(o)
        if kind is Identity:
            continue
        if kind is TemporalBlur:
            m_t, temporal = chain(m_t, temporal_matrix(o, t)), True
        elif kind is FrameDrop:
            if o._frames_in(-(-t // o.factor)) != t:  # the adjoint's frame count must be t
                return None
            m_t, temporal = chain(m_t, _eye(t)[:: o.factor]), True
            t = m_t.shape[0]
        elif kind is FrameSelect:
            if o.num_frames != t:
                return None
            m_t, temporal = chain(m_t, _eye(t)[o.positions.cpu()]), True
            t = m_t.shape[0]
        elif kind is SpatialBlur:
            if not o._separable:
                return None
            m_h = chain(m_h, axis_conv_matrix(o.col, h, o.boundary))
            m_w = chain(m_w, axis_conv_matrix(o.row, w, o.boundary))
            spatial = True
        elif kind is Downsample:
            f = o.factor
            if h % f or w % f:
                return None
            mh, mw = (box_matrix(h, f), box_matrix(w, f)) if o.kind == "box" else (bicubic_matrix(h, f), bicubic_matrix(w, f))
            m_h, m_w, spatial = chain(m_h, mh), chain(m_w, mw), True
            h, w = h // f, w // f
        elif kind is SpatialCrop:
            ch, cw = o.size
            if (h, w) != tuple(o.padded):
                return None
            m_h, m_w, spatial = chain(m_h, _eye(h)[:ch]), chain(m_w, _eye(w)[:cw]), True
            h, w = ch, cw
        elif isinstance(o, Inpaint):
            if mask is not None:
                return None
            mask = o.mask(t, h, w).to(_F64)[0, 0]  # (1 or T, H, W), entries 0 / 1
        else:
            return None
    if mask is not None and (spatial or (temporal and mask.shape[0] > 1)):
        # A mask does not commute with spatial factors, nor a per-frame mask with temporal ones.
        return None
    q_t, l_t = _gram_eig(m_t)
    q_h, l_h = _gram_eig(m_h)
    q_w, l_w = _gram_eig(m_w)
    lam = torch.ones((1, 1, 1), dtype=_F64)
    if l_t is not None:
        lam = lam * l_t[:, None, None]
    if l_h is not None:
        lam = lam * l_h[None, :, None]
    if l_w is not None:
        lam = lam * l_w[None, None, :]
    if mask is not None:
        lam = lam * mask
    return SpectralProx(q_t, q_h, q_w, lam, spec=op.spec)
