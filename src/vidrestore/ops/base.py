"""Linear operator base classes (deepinv-style names: ``A``, ``A_adjoint``, ``A_dagger``).

An operator maps a video ``x`` of shape ``(B, C, T, H, W)`` in pixel space to a measurement
``y``; it never adds noise (see :func:`vidrestore.ops.noise.measure`). Parameters are fixed
at construction. Composition ``A2 @ A1`` applies ``A1`` first.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..errors import UserError
from ..linalg import conjugate_gradient

Shape = tuple[int, int, int, int, int]


@dataclass
class ApplicationCount:
    """Outermost applications of ``A`` plus ``A^T`` counted by :func:`count_applications`.

    A composition's ``A`` counts once (its factors run nested), so ``A^T A x`` counts two.
    An exact proximal solve (:mod:`vidrestore.ops.prox`) applies neither ``A`` nor ``A^T``; it
    counts two (its cost is one transform into the operator's eigenbasis and one back, the
    order of an ``A^T A`` product) and is also counted in ``exact_solves``.
    """

    calls: int = 0
    exact_solves: int = 0
    _depth: int = 0


_COUNTER: ApplicationCount | None = None


@contextmanager
def count_applications() -> Iterator[ApplicationCount]:
    """Count every outermost call of any operator's ``A`` or ``A_adjoint`` in this block
    (single-threaded use; nested blocks are not supported).

    >>> with count_applications() as n:
    ...     _ = op.A_adjoint(op.A(x))
    >>> n.calls
    2
    """
    global _COUNTER
    if _COUNTER is not None:
        raise RuntimeError("count_applications blocks cannot be nested")
    _COUNTER = ApplicationCount()
    try:
        yield _COUNTER
    finally:
        _COUNTER = None


def record_exact_solve() -> None:
    """Report one exact proximal solve to an open :func:`count_applications` block (two
    applications; see :class:`ApplicationCount`). A no-op outside such a block or when
    called from inside an operator application."""
    c = _COUNTER
    if c is not None and c._depth == 0:
        c.calls += 2
        c.exact_solves += 1


def _counted(fn):
    @functools.wraps(fn)
    def wrapper(self, v):
        c = _COUNTER
        if c is None:
            return fn(self, v)
        if c._depth == 0:
            c.calls += 1
        c._depth += 1
        try:
            return fn(self, v)
        finally:
            c._depth -= 1

    wrapper._counted = True  # type: ignore[attr-defined]
    return wrapper


class LinearOperator(nn.Module):
    """Base class for linear video operators.

    Subclasses implement :meth:`A`, :meth:`A_adjoint` and :meth:`output_shape`, and set
    ``self.spec`` to the token that rebuilds them with :func:`vidrestore.ops.parse`.
    """

    spec: str = "?"

    def __init_subclass__(cls, **kwargs):
        # Every subclass's A / A_adjoint reports to count_applications (a no-op outside it).
        super().__init_subclass__(**kwargs)
        for name in ("A", "A_adjoint"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_counted", False):
                setattr(cls, name, _counted(fn))

    # -- interface ------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (paper notation)
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def output_shape(self, in_shape: Shape) -> Shape:
        """Shape of ``A(x)`` for an input of shape ``in_shape``; raises :class:`UserError`
        when the input does not fit the operator (e.g. SR factor not dividing H)."""
        return tuple(in_shape)  # type: ignore[return-value]

    def input_shape(self, out_shape: Shape) -> Shape:
        """Shape of ``A_adjoint(y)`` for ``y`` of shape ``out_shape``."""
        return tuple(out_shape)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def lift(self, y: torch.Tensor) -> torch.Tensor:
        """Bring a measurement back onto the video grid cheaply (not an inverse): identity for
        shape-preserving operators, bicubic upsampling for SR, frame repetition for frame
        dropping. Used to show "the degraded video" and to initialise solvers."""
        return y

    # -- derived --------------------------------------------------------------------
    def A_adjoint_A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """``A^T A x``."""
        return self.A_adjoint(self.A(x))

    def A_dagger(self, y: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-7) -> torch.Tensor:  # noqa: N802
        """Minimum-norm least-squares solution by CG on ``A^T A x = A^T y`` from zero."""
        b = self.A_adjoint(y)
        return conjugate_gradient(self.A_adjoint_A, b, None, max_iter=max_iter, tol=tol)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float, *, max_iter: int = 50, tol: float = 1e-7, x0: torch.Tensor | None = None) -> torch.Tensor:
        """``argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2`` by CG."""
        b = self.A_adjoint(y) + z / gamma
        return conjugate_gradient(lambda v: self.A_adjoint_A(v) + v / gamma, b, z if x0 is None else x0, max_iter=max_iter, tol=tol)

    def check_input(self, x_or_shape) -> Shape:
        """Validate an input (tensor or shape) and return the output shape."""
        shape = tuple(x_or_shape.shape) if isinstance(x_or_shape, torch.Tensor) else tuple(x_or_shape)
        if len(shape) != 5:
            raise UserError(f"operator {self.spec!r} expects a (B, C, T, H, W) video, got shape {shape}")
        return self.output_shape(shape)  # type: ignore[arg-type]

    def __matmul__(self, other: "LinearOperator") -> "Composition":
        """``self @ other`` = apply ``other`` first, then ``self``."""
        return Composition([other, self])

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


class Identity(LinearOperator):
    """``A = I``; ``y`` has the input's shape. Spec token: ``id``."""

    def __init__(self):
        super().__init__()
        self.spec = "id"

    def A(self, x):  # noqa: N802
        return x

    def A_adjoint(self, y):  # noqa: N802
        return y

    def A_dagger(self, y, **kw):  # noqa: N802
        return y


class Composition(LinearOperator):
    """Chain ``A = A_n ∘ ... ∘ A_1``; ``ops[0]`` is applied first (SVI: spatial ∘ temporal)."""

    def __init__(self, ops: list[LinearOperator]):
        super().__init__()
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Composition) else [op])
        if not flat:
            flat = [Identity()]
        self.ops = nn.ModuleList(flat)
        self.spec = ",".join(op.spec for op in flat)

    def A(self, x):  # noqa: N802
        for op in self.ops:
            x = op.A(x)
        return x

    def A_adjoint(self, y):  # noqa: N802
        for op in reversed(self.ops):
            y = op.A_adjoint(y)
        return y

    def lift(self, y):
        for op in reversed(self.ops):
            y = op.lift(y)
        return y

    def output_shape(self, in_shape):
        s = tuple(in_shape)
        for op in self.ops:
            s = op.output_shape(s)
        return s

    def input_shape(self, out_shape):
        s = tuple(out_shape)
        for op in reversed(self.ops):
            s = op.input_shape(s)
        return s
