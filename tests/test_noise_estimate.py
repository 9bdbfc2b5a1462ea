"""Blind noise-level estimation (Immerkær 1996, wavelet MAD) on synthetic measurements."""

from __future__ import annotations

import pytest
import torch

from vidrestore import ops
from vidrestore.errors import UserError
from vidrestore.metrics import estimate_noise_sigma


def _video(t=6, h=64, w=80):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = [torch.stack([0.5 + 0.3 * torch.sin(7 * xx + 3 * yy + 0.4 * k + c) for c in range(3)]) for k in range(t)]
    return torch.stack(frames, 1)[None]  # (1, 3, T, H, W), smooth with edges from the sine


@pytest.mark.parametrize("method", ["immerkaer", "mad"])
@pytest.mark.parametrize("spec", ["id", "tblur:uniform:3:reflect,sr:2", "blur:gauss:1.5"])
@pytest.mark.parametrize("sigma", [0.01, 0.03, 0.1])
def test_estimates_white_noise_within_10_percent(method, spec, sigma):
    x = _video()
    A = ops.parse(spec, num_frames=x.shape[2])
    ax = A.A(x)
    y = ax + sigma * torch.randn(ax.shape, generator=torch.Generator().manual_seed(3))
    est = estimate_noise_sigma(y, method)
    assert abs(est - sigma) < 0.1 * sigma, (est, sigma)
    assert estimate_noise_sigma(ax, method) < 0.003  # clean smooth content reads near 0


def test_noise_estimate_errors():
    with pytest.raises(UserError, match="must be one of"):
        estimate_noise_sigma(torch.zeros(1, 3, 2, 8, 8), "nope")
    with pytest.raises(UserError, match="at least 4x4"):
        estimate_noise_sigma(torch.zeros(1, 3, 2, 3, 8))
    with pytest.raises(UserError, match="expects"):
        estimate_noise_sigma(torch.zeros(3, 8))
