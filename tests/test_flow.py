"""Tests for vidrestore.flow: estimation direction, warping, resizing, consistency."""

from __future__ import annotations

import math

import pytest
import torch

from vidrestore.errors import UserError
from vidrestore.flow import (
    FlowEstimator,
    estimate_flow,
    fb_consistency,
    get_flow_estimator,
    inside_mask,
    resize_flow,
    warp,
)

M = 12  # interior margin in pixels


def texture(h: int, w: int, dx: float = 0.0, dy: float = 0.0, *, seed: int = 0, c: int = 3) -> torch.Tensor:
    """Smooth band-limited texture ``T(x + dx, y + dy)`` as ``(1, c, h, w)`` in [0.1, 0.9].

    A sum of random low-frequency sinusoids, so sub-pixel shifts are exact.
    """
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    xs, ys = xs + dx, ys + dy
    out = torch.zeros(c, h, w, dtype=torch.float64)
    for ch in range(c):
        for _ in range(24):
            u, v = (torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 0.12
            ph = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * math.pi
            out[ch] += torch.sin(2 * math.pi * (u * xs + v * ys) + ph)
    out = 0.5 + 0.4 * out / 24.0 * 3.0
    return out.clamp(0.1, 0.9).float()[None]


def interior(x: torch.Tensor) -> torch.Tensor:
    return x[..., M:-M, M:-M]


@pytest.mark.parametrize("shift", [(3.0, -2.0), (1.3, 0.6)])
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_estimate_flow_recovers_translation(shift, method):
    # target(p) = T(p + d) and source(p) = T(p), so target(p) = source(p + d): flow = d.
    source = texture(96, 96)
    target = texture(96, 96, *shift)
    flow = estimate_flow(target, source, method=method)
    assert flow.shape == (1, 2, 96, 96) and flow.dtype == torch.float32
    err_x = (interior(flow[:, 0]) - shift[0]).abs().median()
    err_y = (interior(flow[:, 1]) - shift[1]).abs().median()
    assert err_x < 0.3 and err_y < 0.3
    # The direction convention: warping the source by the flow reproduces the target.
    warped = warp(source, flow)
    err = interior(warped - target).abs().mean()
    base = interior(source - target).abs().mean()
    assert err < 0.1 * base


def test_estimate_flow_gray_and_batch():
    source = torch.cat([texture(64, 64, seed=1, c=1), texture(64, 64, seed=2, c=1)])
    target = torch.cat([texture(64, 64, 2, 1, seed=1, c=1), texture(64, 64, -1, 2, seed=2, c=1)])
    flow = estimate_flow(target, source, preset="fast")
    assert flow.shape == (2, 2, 64, 64)
    med = interior(flow).flatten(2).median(-1).values
    assert torch.allclose(med, torch.tensor([[2.0, 1.0], [-1.0, 2.0]]), atol=0.3)


def test_estimate_flow_rejects_bad_input():
    with pytest.raises(UserError, match="shapes differ"):
        estimate_flow(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(UserError):
        estimate_flow(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16))


def test_get_flow_estimator():
    est = get_flow_estimator("dis_fast")
    assert isinstance(est, FlowEstimator)
    with pytest.raises(ValueError, match="farneback"):
        get_flow_estimator("raft-nope")

    def zero(target, source):
        return torch.zeros(target.shape[0], 2, *target.shape[-2:])

    assert get_flow_estimator(zero) is zero
    x = torch.rand(1, 3, 8, 8)
    assert estimate_flow(x, x, method=zero).abs().sum() == 0


def test_warp_zero_flow_is_identity():
    x = torch.rand(2, 3, 9, 13)
    out, valid = warp(x, torch.zeros(2, 2, 9, 13)), inside_mask(torch.zeros(2, 2, 9, 13))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    assert valid.shape == (2, 1, 9, 13) and bool((valid == 1).all())
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 9, 13), mode="nearest"), x)


def test_warp_integer_flow_nearest_matches_bilinear_and_shift():
    x = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0
    flow[:, 1] = -1.0
    bil, valid = warp(x, flow), inside_mask(flow)
    near = warp(x, flow, mode="nearest")
    torch.testing.assert_close(bil, near, atol=1e-5, rtol=0)
    # out(y, x) = in(y - 1, x + 2)
    torch.testing.assert_close(bil[..., 1:, :-2], x[..., :-1, 2:], atol=1e-5, rtol=0)
    # Samples leaving the frame: first row (y - 1 < 0) and last two columns.
    expected = torch.ones(10, 12)
    expected[0, :] = 0
    expected[:, -2:] = 0
    torch.testing.assert_close(valid[0, 0], expected)
    assert bil[..., 0, :].abs().max() < 1e-5  # zeros padding


def test_warp_subpixel_is_linear_interpolation():
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 4, 8).contiguous()
    flow = torch.zeros(1, 2, 4, 8)
    flow[:, 0] = 0.25
    out = warp(x, flow)
    torch.testing.assert_close(out[..., :-1], x[..., :-1] + 0.25)


def test_warp_rejects_bad_shapes():
    with pytest.raises(UserError):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(UserError):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_resize_flow_scales_vectors():
    flow = torch.zeros(1, 2, 8, 12)
    flow[:, 0] = 1.5
    flow[:, 1] = -2.0
    out = resize_flow(flow, (16, 36))
    assert out.shape == (1, 2, 16, 36)
    torch.testing.assert_close(out[:, 0], torch.full((1, 16, 36), 4.5))
    torch.testing.assert_close(out[:, 1], torch.full((1, 16, 36), -4.0))
    down = resize_flow(out, (8, 12))
    torch.testing.assert_close(down, flow)


def test_fb_consistency_translation_is_consistent():
    source = texture(80, 80, seed=3)
    target = texture(80, 80, 2.0, -1.0, seed=3)
    fw = estimate_flow(target, source)
    bw = estimate_flow(source, target)
    mask, conf = fb_consistency(fw, bw)
    assert mask.shape == conf.shape == (1, 1, 80, 80)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert interior(mask).mean() > 0.99
    assert interior(conf).mean() > 0.8
    assert bool(((conf > 0) & (conf <= 1)).all())


def test_fb_consistency_marks_disoccluded_region():
    # A square moves 8 px right over a static background between source (A) and target (B).
    h, w, x0, y0, s, d = 48, 64, 16, 16, 16, 8
    fw = torch.zeros(1, 2, h, w)  # target(p) = source(p + fw): square pixels come from x - 8
    fw[:, 0, y0 : y0 + s, x0 + d : x0 + d + s] = -d
    bw = torch.zeros(1, 2, h, w)  # source(q) = target(q + bw)
    bw[:, 0, y0 : y0 + s, x0 : x0 + s] = d
    mask, conf = fb_consistency(fw, bw)
    disoccluded = mask[0, 0, y0 : y0 + s, x0 : x0 + d]
    assert bool((disoccluded == 0).all())
    assert bool((conf[0, 0, y0 : y0 + s, x0 : x0 + d] < 0.01).all())
    # Background and the moved square itself are consistent.
    assert bool((mask[0, 0, :, :x0] == 1).all())
    assert bool((mask[0, 0, y0 : y0 + s, x0 + d : x0 + d + s] == 1).all())
    assert mask.mean() > 0.9
