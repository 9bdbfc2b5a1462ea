"""PVDNet flow-source selection, pyramid flow and the do-no-harm corrections."""

import pytest
import torch
import torch.nn.functional as F

from vidrestore.errors import UserError
from vidrestore.flow import dis_flow, pyramid_flow, pyramid_size
from vidrestore.nets import PVDNetDeblur
from vidrestore.workflows import deblur as D

TINY_PVD = {"pv_ch": 4, "img_ch": 4, "ch": 4, "mid_ch": 4, "low_ch": 4, "num_blocks": 1}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _texture(h, w, seed=0):
    """Smooth random texture (blurred noise) in [0, 1], (1, 3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


def test_pyramid_size_rule():
    assert pyramid_size(96, 96) == (96, 96)  # never upscaled
    assert pyramid_size(128, 160) == (128, 160)
    assert pyramid_size(256, 320) == (128, 160)
    assert pyramid_size(352, 640) == (128, 224)  # 640 / 2.75 = 232.7 -> nearest multiple of 32
    assert pyramid_size(352, 640, short_side=96) == (96, 160)
    with pytest.raises(UserError):
        pyramid_size(100, 100, short_side=16)


def test_pyramid_flow_scales_vectors_by_the_size_ratio():
    seen = []

    def const(target, source):  # a flow of (1, 2) px at whatever size the estimator sees
        seen.append(tuple(target.shape[-2:]))
        f = torch.zeros(target.shape[0], 2, *target.shape[-2:])
        f[:, 0], f[:, 1] = 1.0, 2.0
        return f

    x = torch.rand(2, 3, 352, 640)
    f = pyramid_flow(const, x, x)
    assert seen == [(128, 224)] and f.shape == (2, 2, 352, 640)
    torch.testing.assert_close(f[:, 0], torch.full((2, 352, 640), 640 / 224))
    torch.testing.assert_close(f[:, 1], torch.full((2, 352, 640), 2 * 352 / 128))
    # small frames go to the estimator unchanged
    y = torch.rand(1, 3, 96, 96)
    torch.testing.assert_close(pyramid_flow(const, y, y)[:, 1], torch.full((1, 96, 96), 2.0))


def test_pyramid_flow_recovers_a_large_translation_at_a_large_size():
    """A 24 x -15 px shift of a 384x512 texture, estimated by DIS on a 128x160 copy (3.2x
    smaller, where it is 7.5 x -4.7 px), comes back in full-size pixels within 0.5 px."""
    dx, dy = 24, -15
    big = _texture(384 + 64, 512 + 64, seed=3)
    cur = big[..., 32 : 32 + 384, 32 : 32 + 512]
    prev = big[..., 32 + dy : 32 + dy + 384, 32 + dx : 32 + dx + 512]  # cur(p) = prev(p - d)
    f = pyramid_flow(dis_flow, cur, prev, short_side=128)
    inner = f[..., 48:-48, 48:-48]
    assert abs(float(inner[:, 0].median()) + dx) < 0.5
    assert abs(float(inner[:, 1].median()) + dy) < 0.5


def test_auto_flow_rule_by_size():
    # BIMNet trained on 96 px crops: full size up to 7/6 x 96 = 112 px shorter side, then DIS
    assert D.auto_flow(96, 96, 96) == "bimnet"
    assert D.auto_flow(112, 1000, 96) == "bimnet"
    assert D.auto_flow(113, 200, 96) == D.AUTO_LARGE == "dis"
    assert D.auto_flow(128, 160, 96) == "dis"
    assert D.auto_flow(200, 224, 192) == "bimnet"  # the rule follows the training size
    assert D.auto_flow(256, 320, 96) == "dis" and D.auto_flow(352, 640, 96) == "dis"
    assert D.auto_flow(720, 1280, None) == "bimnet"  # weights that do not say: the paper's own flow


def test_pvdnet_flow_fn_resolves_defaults_and_names():
    net = PVDNetDeblur("small", TINY_PVD)
    net.pretrained_config = {"flow": "bimnet", "size": 96}
    assert D.pvdnet_flow_fn(net, None, (96, 96))[0] == "bimnet"  # weights' "bimnet" -> auto
    assert D.pvdnet_flow_fn(net, None, (256, 320))[0] == "dis"
    assert D.pvdnet_flow_fn(net, "bimnet", (256, 320))[0] == "bimnet"  # explicit choice kept
    name, fn, zero = D.pvdnet_flow_fn(net, "bimnet-pyramid", (256, 320))
    assert name == "bimnet-pyramid" and callable(fn) and not zero
    x = torch.rand(1, 3, 256, 320)
    assert fn(x, x).shape == (1, 2, 256, 320)
    net.pretrained_config = {"flow": "dis"}
    assert D.pvdnet_flow_fn(net, None, (96, 96))[0] == "dis"
    assert D.pvdnet_flow_fn(net, "zero", (96, 96))[2] is True
    with pytest.raises(UserError):
        D.pvdnet_flow_fn(net, "raft", (96, 96))


@pytest.mark.parametrize("sigma", [None, 8.0])
def test_colour_correct_restores_the_mean_and_keeps_detail(sigma):
    ref = _texture(64, 80, seed=1)
    g = torch.Generator().manual_seed(2)
    detail = 0.05 * torch.randn(1, 3, 64, 80, generator=g)
    out = ref * torch.tensor([0.99, 0.985, 0.97]).view(1, 3, 1, 1) - 0.01 + detail  # darker, tinted, sharper
    fixed = D.colour_correct(out, ref, sigma)
    torch.testing.assert_close(fixed.mean((-2, -1)), ref.mean((-2, -1)), atol=2e-4, rtol=0)
    assert (out.mean((-2, -1)) - ref.mean((-2, -1))).abs().max() > 0.01  # the case was off before
    # high frequencies are left alone: the correction is smooth
    hf = (fixed - out) - F.avg_pool2d(fixed - out, 3, 1, 1, count_include_pad=False)
    assert float(hf.abs().max()) < 0.01


def test_deblur_video_pvdnet_colour_correction_removes_a_brightness_drift():
    torch.manual_seed(0)
    net = PVDNetDeblur("small", TINY_PVD).eval()
    torch.nn.init.zeros_(net.pvdnet.end.weight)
    net.pvdnet.end.bias.data.fill_(-0.04)  # a network that darkens every frame by 2 % of the range
    clip = _texture(64, 64, seed=4).unsqueeze(2).repeat(1, 1, 3, 1, 1) * 0.8 + 0.1
    drift = deblur_mean = D.deblur_video_pvdnet(clip, net, flow="zero", colour=False, guard=False)
    assert float((drift - clip).mean()) < -0.015
    fixed = D.deblur_video_pvdnet(clip, net, flow="zero", colour=True, colour_gamma=1.0, guard=False)
    torch.testing.assert_close(fixed.mean((-2, -1)), clip.mean((-2, -1)), atol=1e-4, rtol=0)
    fixed = D.deblur_video_pvdnet(clip, net, flow="zero", guard=False)  # default: light in linear light
    torch.testing.assert_close(fixed.pow(2.2).mean((-2, -1)), clip.pow(2.2).mean((-2, -1)), atol=2e-4, rtol=0)
    del deblur_mean


def test_flow_fails_flags_a_flow_worse_than_none():
    big = _texture(96, 128, seed=5)
    cur, prev = big[..., 8:72, 8:104], big[..., 8:72, 12:108]  # cur(p) = prev(p - (4, 0))
    right = torch.zeros(1, 2, 64, 96)
    right[:, 0] = -4.0
    assert not D.flow_fails(cur, prev, right)
    assert D.flow_fails(cur, prev, -right + torch.tensor([0.0, 6.0]).view(1, 2, 1, 1))  # the wrong way


def test_guard_returns_frames_unchanged_when_the_flow_fails(monkeypatch):
    from vidrestore.errors import VidrestoreWarning

    torch.manual_seed(0)
    net = PVDNetDeblur("small", TINY_PVD).eval()
    torch.nn.init.normal_(net.pvdnet.end.weight, std=0.05)
    big = _texture(96, 160, seed=6)
    clip = torch.stack([big[..., 8:72, 8 + 4 * t : 104 + 4 * t] for t in range(4)], 2)  # panning
    monkeypatch.setattr(net, "flow", lambda cur, prev: torch.full_like(cur[:, :2], 9.0))  # nonsense motion
    stats = {}
    with pytest.warns(VidrestoreWarning, match="3 of 4 frames"):
        out = D.deblur_video_pvdnet(clip, net, flow="bimnet", guard=True, stats=stats)
    assert stats["flow"] == "bimnet" and stats["unchanged"] == 3
    torch.testing.assert_close(out[:, :, 1:], clip[:, :, 1:])  # frame 0 has no motion to check
    unguarded = D.deblur_video_pvdnet(clip, net, flow="bimnet", guard=False)
    assert float((unguarded[:, :, 1:] - clip[:, :, 1:]).abs().mean()) > 1e-3


def test_colour_correct_in_linear_light_conserves_the_light():
    ref = _texture(64, 80, seed=7) * 0.9 + 0.05
    g = torch.Generator().manual_seed(8)
    out = (ref * 0.97 + 0.03 * torch.randn(1, 3, 64, 80, generator=g)).clamp(0, 1)
    for sigma in (None, 12.0):
        fixed = D.colour_correct(out, ref, sigma, gamma=2.2)
        assert fixed.min() >= 0
        lin = lambda x: x.pow(2.2).mean((-2, -1))  # noqa: E731
        torch.testing.assert_close(lin(fixed), lin(ref), atol=3e-4, rtol=0)
        assert (lin(out) - lin(ref)).abs().max() > 0.005


def test_explained_fraction_separates_deblurring_from_invented_detail():
    """A frame blurred along a known motion: its sharp original explains all of the change
    (about 1), twice the change half of it, and detail added to an unblurred frame none."""
    sharp = _texture(64, 96, seed=9)
    flow = torch.zeros(1, 2, 64, 96)
    flow[:, 0] = 6.0
    blurry = D.reblur(sharp.pow(2.2), flow).pow(1 / 2.2)
    assert D.explained_fraction(sharp, blurry, flow) > 0.8
    over = (blurry + 2 * (sharp - blurry)).clamp(0, 1)
    assert 0.3 < D.explained_fraction(over, blurry, flow) < 0.7
    g = torch.Generator().manual_seed(10)
    invented = (sharp + 0.05 * torch.randn(sharp.shape, generator=g)).clamp(0, 1)
    assert D.explained_fraction(invented, sharp, torch.zeros_like(flow)) == 0.0
