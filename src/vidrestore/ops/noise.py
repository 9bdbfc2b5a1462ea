"""Measurement noise. Noise is never hidden inside an operator: ``y = A(x) + sigma_y * n``."""

from __future__ import annotations

import torch

from ..errors import UserError
from .base import LinearOperator


def measure(op: LinearOperator, x: torch.Tensor, sigma_y: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy measurement ``y = A(x) + sigma_y * n``, ``n ~ N(0, I)``.

    Args:
        op: the forward operator.
        x: clean video ``(B, C, T, H, W)`` in ``[0, 1]``.
        sigma_y: noise std in pixel units (``[0, 1]`` range), >= 0.
        generator: source of randomness (CPU generator; noise is drawn on the CPU and moved,
            so the same seed gives the same ``y`` on every device).
    """
    if sigma_y < 0:
        raise UserError(f"sigma_y must be >= 0, got {sigma_y}")
    y = op.A(x)
    if sigma_y > 0:
        n = torch.randn(y.shape, generator=generator, dtype=torch.float32).to(device=y.device, dtype=y.dtype)
        y = y + sigma_y * n
    return y
