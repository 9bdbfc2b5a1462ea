"""Tests for vidrestore.metrics: PSNR/SSIM vs scikit-image, warp error, report."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vidrestore.errors import UserError
from vidrestore.metrics import (
    compute_ref_flows,
    format_table,
    psnr,
    rgb_to_y,
    ssim,
    video_metrics,
    warp_error,
)

# ---------------------------------------------------------------------------- helpers


def to_np(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, C) float64 array."""
    return x.permute(1, 2, 0).double().numpy()


def np_y(img: np.ndarray) -> np.ndarray:
    """BasicSR bgr2ycbcr(y_only=True) on an RGB float image in [0, 1] (reference)."""
    bgr = img[..., ::-1]
    return (np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0) / 255.0


@pytest.fixture(scope="module")
def natural_pair() -> tuple[torch.Tensor, torch.Tensor]:
    img = cv2.resize(skdata.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)
    ref = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
    g = torch.Generator().manual_seed(0)
    out = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    return out, ref


@pytest.fixture(scope="module")
def random_pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 40, 36, generator=g)
    out = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    return out, ref


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    kw = {"channel_axis": -1} if a.ndim == 3 else {}
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, **kw
    )


# ---------------------------------------------------------------------------- PSNR / SSIM


def test_rgb_to_y_matches_basicsr_formula():
    x = torch.tensor([[0.0, 1.0, 0.3], [0.0, 1.0, 0.6], [0.0, 1.0, 0.9]]).view(1, 3, 1, 3)
    y = rgb_to_y(x)
    assert y.shape == (1, 1, 1, 3)
    expected = np_y(x[0].permute(1, 2, 0).double().numpy())
    np.testing.assert_allclose(y[0, 0].double().numpy(), expected, atol=1e-6)
    assert abs(float(y[0, 0, 0, 0]) - 16 / 255) < 1e-6 and abs(float(y[0, 0, 0, 1]) - 235 / 255) < 1e-6


@pytest.mark.parametrize("pair", ["natural_pair", "random_pair"])
def test_psnr_ssim_match_skimage(pair, request):
    out, ref = request.getfixturevalue(pair)
    p = psnr(out, ref, reduction="none")
    s = ssim(out, ref, reduction="none")
    assert p.shape == s.shape == (out.shape[0],)
    for i in range(out.shape[0]):
        a, b = to_np(out[i]), to_np(ref[i])
        assert abs(float(p[i]) - peak_signal_noise_ratio(b, a, data_range=1.0)) < 1e-3
        assert abs(float(s[i]) - sk_ssim(a, b)) < 1e-3
    assert abs(psnr(out, ref) - float(p.mean())) < 1e-9


def test_crop_border_and_y_channel_match_skimage(natural_pair):
    out, ref = natural_pair
    cb = 4
    a, b = to_np(out[0])[cb:-cb, cb:-cb], to_np(ref[0])[cb:-cb, cb:-cb]
    assert abs(psnr(out, ref, crop_border=cb) - peak_signal_noise_ratio(b, a, data_range=1.0)) < 1e-3
    assert abs(ssim(out, ref, crop_border=cb) - sk_ssim(a, b)) < 1e-3
    ya, yb = np_y(a), np_y(b)
    p_y = psnr(out, ref, crop_border=cb, y_channel=True)
    s_y = ssim(out, ref, crop_border=cb, y_channel=True)
    assert abs(p_y - peak_signal_noise_ratio(yb, ya, data_range=1.0)) < 1e-3
    assert abs(s_y - sk_ssim(ya, yb)) < 1e-3
    assert p_y != pytest.approx(psnr(out, ref, crop_border=cb), abs=1e-3)


def test_video_per_frame(random_pair):
    out_i, ref_i = random_pair  # (2, 3, H, W)
    # Video with T=2 whose frames are the two images; B=1.
    out = out_i.permute(1, 0, 2, 3)[None]
    ref = ref_i.permute(1, 0, 2, 3)[None]
    p = psnr(out, ref, reduction="none")
    s = ssim(out, ref, reduction="none")
    assert p.shape == s.shape == (1, 2)
    torch.testing.assert_close(p[0], psnr(out_i, ref_i, reduction="none"))
    torch.testing.assert_close(s[0], ssim(out_i, ref_i, reduction="none"))


def test_known_mse_gives_known_psnr():
    ref = torch.full((1, 3, 2, 8, 8), 0.5)
    out = ref + 0.1  # MSE = 0.01 -> PSNR = 20 dB exactly
    assert psnr(out, ref) == pytest.approx(20.0, abs=1e-5)
    assert psnr(out * 255, ref * 255, data_range=255.0) == pytest.approx(20.0, abs=1e-5)


def test_identical_gives_inf_and_ssim_one():
    x = torch.rand(1, 3, 2, 16, 16)
    assert psnr(x, x) == math.inf
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    y = x.clone()
    y[:, :, 1] += 0.01
    per = psnr(y, x, reduction="none")
    assert math.isinf(float(per[0, 0])) and math.isfinite(float(per[0, 1]))
    assert psnr(y, x) == math.inf  # mean over frames with an inf is inf


def test_bad_inputs_raise():
    a = torch.rand(1, 3, 2, 16, 16)
    with pytest.raises(UserError, match=r"\(1, 3, 2, 16, 16\).*\(1, 3, 2, 16, 17\)"):
        psnr(a, torch.rand(1, 3, 2, 16, 17))
    with pytest.raises(UserError, match="shape"):
        ssim(a, torch.rand(1, 3, 16, 16))
    b = a.clone()
    b[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        psnr(b, a)
    with pytest.raises(UserError, match="NaN"):
        ssim(a, b)
    with pytest.raises(UserError):
        psnr(a, a, crop_border=8)
    with pytest.raises(UserError):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))  # smaller than the window
    with pytest.raises(UserError):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), y_channel=True)
    with pytest.raises(UserError):
        psnr(a, a, reduction="sum")


# ---------------------------------------------------------------------------- warp error


def translating_video(t: int = 4, h: int = 48, w: int = 48, step=(2, 1), seed: int = 0) -> torch.Tensor:
    """Crops of a smooth texture moving by an integer ``step`` (dx, dy) per frame, in [0.2, 0.8]."""
    g = torch.Generator().manual_seed(seed)
    big = torch.rand(1, 3, h + 40, w + 40, generator=g)
    big = torch.nn.functional.avg_pool2d(big, 5, 1, 2)
    big = torch.nn.functional.avg_pool2d(big, 5, 1, 2)
    big = (big - big.amin()) / (big.amax() - big.amin()) * 0.6 + 0.2
    frames = [big[..., 20 + k * step[1] : 20 + k * step[1] + h, 20 + k * step[0] : 20 + k * step[0] + w] for k in range(t)]
    return torch.stack(frames, 2)


@pytest.fixture(scope="module")
def moving() -> tuple[torch.Tensor, object]:
    video = translating_video()
    return video, compute_ref_flows(video)


def test_compute_ref_flows_shapes_and_direction(moving):
    video, rf = moving
    assert rf.flows.shape == (1, 2, 3, 48, 48) and rf.masks.shape == (1, 1, 3, 48, 48)
    # Frame t+1 shows the texture moved by (2, 1): V_{t+1}(p) = V_t(p + (2, 1)).
    med = rf.flows[..., 8:-8, 8:-8].flatten(3).median(-1).values[0]
    torch.testing.assert_close(med, torch.tensor([[2.0] * 3, [1.0] * 3]), atol=0.2, rtol=0)
    assert rf.masks.mean() > 0.85


def test_warp_error_translation_is_near_zero(moving):
    video, rf = moving
    e = warp_error(video)
    assert e < 1e-4
    per = warp_error(video, flows=rf, reduction="none")
    assert per.shape == (1, 3) and float(per.max()) < 1e-4


def test_warp_error_noise_adds_twice_variance(moving):
    video, rf = moving
    sigma = 0.03
    g = torch.Generator().manual_seed(5)
    noisy = video + sigma * torch.randn(video.shape, generator=g)
    e_clean = warp_error(video, flows=rf.flows, masks=rf.masks)
    e_noisy = warp_error(noisy, video)  # flows from the clean reference
    assert e_noisy - e_clean == pytest.approx(2 * sigma**2, rel=0.25)
    assert warp_error(noisy, flows=rf) == pytest.approx(e_noisy, rel=1e-6)


def test_warp_error_flicker_scores_higher(moving):
    video, rf = moving
    jitter = torch.tensor([0.0, 0.08, -0.06, 0.07]).view(1, 1, 4, 1, 1)
    flicker = video + jitter
    e_steady = warp_error(video, flows=rf)
    e_flicker = warp_error(flicker, video)
    assert e_flicker > 100 * max(e_steady, 1e-7)
    assert e_flicker > 1e-3


def test_warp_error_bad_inputs(moving):
    video, rf = moving
    with pytest.raises(UserError, match="at least 2 frames"):
        warp_error(video[:, :, :1])
    with pytest.raises(UserError, match="shape"):
        warp_error(video, video[..., :-1])
    with pytest.raises(UserError, match="flows"):
        warp_error(video, flows=rf.flows[:, :, :2])
    bad = video.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        warp_error(bad)


# ---------------------------------------------------------------------------- report


def test_video_metrics_and_table(moving):
    video, rf = moving
    out = (video + 0.02).clamp(0, 1)
    m = video_metrics(out, video, crop_border=2, ref_flows=rf)
    assert set(m) >= {"psnr", "ssim", "warp_error", "per_frame", "frames", "crop_border", "y_channel"}
    assert m["frames"] == 4 and len(m["per_frame"]) == 4 and m["crop_border"] == 2 and m["y_channel"] is False
    assert m["per_frame"][1]["frame"] == 1
    assert m["psnr"] == pytest.approx(psnr(out, video, crop_border=2))
    assert m["ssim"] == pytest.approx(ssim(out, video, crop_border=2))
    assert m["warp_error"] is not None and m["warp_error"] < 1e-3
    m_nowarp = video_metrics(out, video, warp=False, y_channel=True)
    assert m_nowarp["warp_error"] is None and m_nowarp["y_channel"] is True
    m_single = video_metrics(out[:, :, :1], video[:, :, :1])
    assert m_single["warp_error"] is None and m_single["frames"] == 1

    ident = video_metrics(video, video, warp=False)
    table = format_table({"noisy-input": m, "identity": ident})
    lines = table.splitlines()
    assert lines[0].split() == ["Method", "PSNR", "SSIM", "E_warp"]
    assert len(lines) == 4 and len({len(line) for line in lines[2:]}) <= 2
    assert "inf" in lines[3] and lines[3].rstrip().endswith("-")
    assert f"{m['psnr']:.2f}" in lines[2] and f"{m['ssim']:.4f}" in lines[2]
    # Columns are right-aligned: PSNR entries end at the same offset as the header.
    end = lines[0].index("PSNR") + len("PSNR")
    assert lines[2][:end].endswith(f"{m['psnr']:.2f}") and lines[3][:end].endswith("inf")
