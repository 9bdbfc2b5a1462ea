"""Closed-form Gaussian data prior: an exact denoiser for tests and documentation.

If the (model-space) data is ``x_0 ~ N(mu, s^2 I)`` independently per pixel and
``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps``, then ``(x_0, x_t)`` is jointly Gaussian with

    x_t ~ N(sqrt(abar) mu, (abar s^2 + 1 - abar) I),
    E[x_0 | x_t] = mu + sqrt(abar) s^2 (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar),
    E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar),

(standard Gaussian conditioning). These are the exact minimisers of the diffusion training loss,
so :class:`GaussianPrior` stands in for a perfectly trained network: samplers must reproduce
``N(mu, s^2)`` and solvers can be checked against closed-form posteriors.
"""

from __future__ import annotations

import torch

from .denoisers import DenoiserBase, abar_at

__all__ = ["GaussianPrior"]


class GaussianPrior(DenoiserBase):
    """Exact denoiser for the prior ``x_0 ~ N(mean, std^2 I)`` in model space ``[-1, 1]``.

    Implements the denoiser protocol (``alphas_cumprod`` and ``eps_and_x0``).

    Args:
        mean: Prior mean ``mu`` in model space; float or tensor broadcastable to ``x_t``
            (e.g. shape ``(C, 1, 1)`` for images, ``(C, 1, 1, 1)`` for videos).
        std: Prior std ``s`` in model space, ``>= 0``; float or broadcastable tensor.
        alphas_cumprod: ``[N]`` cumulative alphas of the schedule.
    """

    def __init__(self, mean: torch.Tensor | float, std: torch.Tensor | float, alphas_cumprod: torch.Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64).detach().cpu()
        self.std = torch.as_tensor(std, dtype=torch.float64).detach().cpu()
        if bool((self.std < 0).any()):
            raise ValueError("std must be >= 0")
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)

    def eps_and_x0(self, x_t: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact ``(E[eps | x_t], E[x_0 | x_t])``.

        Args:
            x_t: Noisy sample in model space, ``(N, ...)``.
            t: Integer timesteps, int or ``[N]``.

        Returns:
            ``(eps, x0)``, each broadcast to ``x_t``'s shape.
        """
        abar = abar_at(self.alphas_cumprod, t, x_t)
        mu, s = self._params(x_t)
        # Residual of x_t against its marginal mean, divided by its marginal variance.
        r = (x_t - abar.sqrt() * mu) / (abar * s**2 + 1.0 - abar)
        x0 = mu + abar.sqrt() * s**2 * r
        eps = (1.0 - abar).sqrt() * r
        return eps, x0

    def marginal(self, t: torch.Tensor | int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of ``x_t``: ``sqrt(abar) mu`` and ``sqrt(abar s^2 + 1 - abar)``.

        Args:
            t: Integer timesteps, int or ``[like.shape[0]]``.
            like: Tensor whose batch size, ndim, dtype and device the result follows.

        Returns:
            ``(mean, std)`` broadcastable to ``like``.
        """
        abar = abar_at(self.alphas_cumprod, t, like)
        mu, s = self._params(like)
        return abar.sqrt() * mu, (abar * s**2 + 1.0 - abar).sqrt()

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw ``x_0 ~ N(mu, s^2 I)`` of the given shape in model space."""
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        mu, s = self._params(z)
        return mu + s * z
