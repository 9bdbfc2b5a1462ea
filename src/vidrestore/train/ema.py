"""Exponential moving average of network weights (Polyak averaging).

Diffusion models are sampled with an EMA of the training weights (Ho et al. 2020, Sec. 4;
Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative Models").
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Shadow copy ``theta_ema <- d * theta_ema + (1 - d) * theta`` of a module's state.

    The decay warms up as ``d_n = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
    ``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``), so short runs are not
    dominated by the initial weights. Floating buffers are averaged like parameters; other
    buffers are copied.

    Args:
        module: The trained network.
        decay: Asymptotic decay rate.
        warmup: Use the warm-up rule above.

    Attributes:
        shadow: Averaged tensors, keyed like ``module.state_dict()``.
        num_updates: Number of :meth:`update` calls so far.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999, *, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in module.state_dict().items()
        }

    def current_decay(self) -> float:
        """Decay used by the next :meth:`update`."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the shadow towards ``module``'s current weights."""
        d = self.current_decay()
        for key, value in module.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow tensors (a plain tensor dict, e.g. for safetensors)."""
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_updates: int | None = None) -> None:
        """Restore the shadow (keys must match) and optionally the update counter."""
        if set(state) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(state))
            unexpected = sorted(set(state) - set(self.shadow))
            raise ValueError(f"EMA state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for key, value in state.items():
            self.shadow[key].copy_(value)
        if num_updates is not None:
            self.num_updates = int(num_updates)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> nn.Module:
        """Load the averaged weights into ``module`` (same architecture); returns it."""
        module.load_state_dict(self.shadow, strict=True)
        return module
