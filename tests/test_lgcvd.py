"""LGC-VD: conditioning masks, task mix, architecture, two-stage training step, sampling."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
import torch

from vidrestore.checkpoint import from_pretrained, save_pretrained
from vidrestore.data.moving_digits import MovingDigits, moving_digits
from vidrestore.errors import UserError
from vidrestore.nets.lgcvd import LGCVD_PRESETS, LGCVDUNet, local_condition
from vidrestore.train.lgcvd import (
    lgcvd_alphas_cumprod,
    sample_tasks,
    task_positions,
    two_stage_step,
    v_loss,
)
from vidrestore.workflows.lgcvd import generate_video, interpolate_video, predict_video, sample_clip

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


TINY = dict(channels=1, frames=8, image_size=16, dim=8, dim_mults=[1, 2], num_res_blocks=1, attn_resolutions=[8], head_channels=8)


def tiny(global_context: bool = True, seed: int = 0) -> LGCVDUNet:
    torch.manual_seed(seed)
    return LGCVDUNet(**TINY, global_context=global_context).eval()


# ------------------------------------------------------------------------------------------
# Local condition (frames + position masks) for each task.
# ------------------------------------------------------------------------------------------


def _clip(b=4, c=1, f=8, h=16, w=16):
    return torch.rand(b, c, f, h, w, generator=torch.Generator().manual_seed(3))


def test_condition_prediction_interpolation_unconditional_random():
    clip = _clip()
    pos = torch.tensor([[0, 1], [-1, -1], [0, 7], [-1, 4]])
    cond = local_condition(clip, pos)
    assert cond.shape == (4, 4, 16, 16)
    m = lambda p: 2 * (p + 1) / 9 - 1  # noqa: E731  mask value in model space
    # prediction: frames 0, 1 with masks 1/9 and 2/9 (pixel) -> 2x - 1
    torch.testing.assert_close(cond[0, 0], 2 * clip[0, 0, 0] - 1)
    torch.testing.assert_close(cond[0, 2], 2 * clip[0, 0, 1] - 1)
    assert torch.allclose(cond[0, 1], torch.full((16, 16), m(0)))
    assert torch.allclose(cond[0, 3], torch.full((16, 16), m(1)))
    # unconditional: absent frames and masks are -1 everywhere
    assert torch.equal(cond[1], torch.full((4, 16, 16), -1.0))
    # interpolation: first and last frame, mask of position 7 = 8/9
    torch.testing.assert_close(cond[2, 2], 2 * clip[2, 0, 7] - 1)
    assert torch.allclose(cond[2, 3], torch.full((16, 16), m(7)))
    # random with one absent slot
    assert torch.equal(cond[3, :2], torch.full((2, 16, 16), -1.0))
    torch.testing.assert_close(cond[3, 2], 2 * clip[3, 0, 4] - 1)
    assert torch.allclose(cond[3, 3], torch.full((16, 16), m(4)))


def test_condition_rgb_channel_layout():
    clip = _clip(b=1, c=3)
    cond = local_condition(clip, torch.tensor([[2, 5]]))
    assert cond.shape == (1, 8, 16, 16)
    torch.testing.assert_close(cond[0, 0:3], 2 * clip[0, :, 2] - 1)
    torch.testing.assert_close(cond[0, 4:7], 2 * clip[0, :, 5] - 1)


def test_task_mix_and_positions():
    g = torch.Generator().manual_seed(0)
    tasks = sample_tasks(20000, g)
    share = {k: tasks.count(k) / len(tasks) for k in ("prediction", "unconditional", "interpolation", "random")}
    assert abs(share["prediction"] - 0.45) < 0.02 and abs(share["unconditional"] - 0.40) < 0.02
    assert abs(share["interpolation"] - 0.05) < 0.01 and abs(share["random"] - 0.10) < 0.01
    pos = task_positions(["prediction", "unconditional", "interpolation"], 8)
    assert pos.tolist() == [[0, 1], [-1, -1], [0, 7]]
    rnd = task_positions(["random"] * 500, 8, g)
    assert bool((rnd[:, 0] < rnd[:, 1]).all())  # distinct and sorted
    assert int(rnd.min()) == -1 and int(rnd.max()) == 6
    with pytest.raises(ValueError):
        task_positions(["nope"])


# ------------------------------------------------------------------------------------------
# Architecture.
# ------------------------------------------------------------------------------------------


def test_published_parameter_counts():
    """Denoiser 63,403,032 and context encoder 33,104,640 parameters (released code)."""
    for name in ("cityscapes128", "bair64"):
        with torch.device("meta"):
            net = LGCVDUNet(**LGCVD_PRESETS[name])
        enc = sum(p.numel() for p in net.encoder.parameters())
        total = sum(p.numel() for p in net.parameters())
        assert (total - enc, enc) == (63_403_032, 33_104_640)


def test_forward_shapes_context_and_roundtrip(tmp_path):
    net = tiny()
    x = torch.randn(2, 1, 8, 16, 16)
    t = torch.tensor([5, 900])
    cond = local_condition(torch.rand(2, 1, 8, 16, 16), torch.tensor([[0, 1], [0, 7]]))
    ctx = net.encode_context(torch.randn(2, 1, 8, 16, 16))
    assert ctx.shape == (2, 16, 8, 8)
    out = net(x, t, cond, ctx)
    assert out.shape == x.shape
    # the global context changes the output (cross-attention is live, though initialised small)
    out0 = net(x, t, cond, None)
    assert not torch.allclose(out, out0)
    save_pretrained(net, tmp_path / "m")
    net2 = from_pretrained(tmp_path / "m")
    torch.testing.assert_close(net2(x, t, cond, ctx), out)
    ablation = tiny(global_context=False)
    assert ablation.encode_context(x) is None and ablation(x, t, cond, None).shape == x.shape


def test_v_loss_is_zero_for_exact_v_and_recovers_x0():
    acp = lgcvd_alphas_cumprod().float()
    x0 = torch.rand(2, 1, 8, 16, 16) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([10, 600])

    class Oracle(torch.nn.Module):
        def forward(self, x_t, t, cond, ctx):
            a = acp[t].view(-1, 1, 1, 1, 1)
            return a.sqrt() * noise - (1 - a).sqrt() * x0

    loss, x0_hat = v_loss(Oracle(), x0, None, None, t, noise, acp)
    assert float(loss) < 1e-6
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=0)


def test_cosine_schedule_of_official_code():
    acp = lgcvd_alphas_cumprod()
    assert acp.shape == (1000,)
    betas = 1 - acp[1:] / acp[:-1]
    assert float(betas.max()) <= 0.9999 + 1e-12 and float(acp[-1]) < 1e-6


# ------------------------------------------------------------------------------------------
# Training.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("two_stage", [True, False])
def test_one_training_iteration_lowers_the_loss(two_stage):
    net = tiny(global_context=two_stage).train()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    acp = lgcvd_alphas_cumprod().float()
    window = moving_digits(4, frames=14, size=16, digit_size=8, split="train", channels=1)
    # Re-seeding reproduces the same tasks, timesteps and noise, so loss1 of the second call is
    # the same stage-1 objective evaluated after the first iteration's two updates.
    before, _ = two_stage_step(net, opt, window, acp, torch.Generator().manual_seed(0), two_stage=two_stage)
    after, _ = two_stage_step(net, opt, window, acp, torch.Generator().manual_seed(0), two_stage=two_stage)
    assert after < before - 1e-3


# ------------------------------------------------------------------------------------------
# Sampling.
# ------------------------------------------------------------------------------------------


class _ExactV(torch.nn.Module):
    """Stand-in for the LGC-VD net that returns the exact ``v`` of a known data distribution.

    ``kind="point"``: all data equal ``x0`` (posterior mean = ``x0``); ``kind="gauss"``: i.i.d.
    pixels ``N(m, s^2)`` in model space, posterior mean
    ``m + sqrt(a) s^2 (x_t - sqrt(a) m) / (a s^2 + 1 - a)``. ``v = sqrt(a) eps - sqrt(1 - a) x0``.
    """

    frames, channels, global_context = 8, 1, False

    def __init__(self, kind, x0=None, m=0.1, s=0.3):
        super().__init__()
        self.kind, self.x0, self.m, self.s = kind, x0, m, s
        self.acp = lgcvd_alphas_cumprod()

    def forward(self, x_t, t, cond, ctx):
        a = self.acp[t].to(x_t.dtype).view(-1, 1, 1, 1, 1)
        if self.kind == "point":
            x0 = self.x0
        else:
            x0 = self.m + a.sqrt() * self.s**2 * (x_t - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_with_exact_v_returns_the_data(eta):
    # Point mass: every step's x0 estimate is exact, so the sample is the data (pixel space).
    x0 = torch.rand(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for steps in (1, 25):
        y = sample_clip(_ExactV("point", x0), torch.zeros_like(x0), torch.tensor([[0, 1]] * 2), None,
                        steps=steps, eta=eta, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(y, (x0 + 1) / 2, atol=1e-6, rtol=0)
    # Gaussian data N(0.1, 0.3^2): 100 respaced steps give back its mean and (nearly) its std
    # (coarse steps shrink the variance a little: measured std 0.283 ancestral, 0.293 DDIM).
    y = sample_clip(_ExactV("gauss"), torch.zeros(4, 1, 8, 32, 32), torch.full((4, 2), -1), None,
                    steps=100, eta=eta, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert abs(float(y.mean()) - 0.1) < 0.01
    assert 0.27 < float(y.std()) < 0.31


def test_stage2_conditions_on_the_stage1_one_step_estimate():
    """Train/sample consistency of the two-stage step (lgcvd.md section 4)."""
    from vidrestore.diffusion.denoisers import x0_from_v

    net = tiny().train()
    calls, encoded = [], []
    fwd, enc = net.forward, net.encode_context

    def record_forward(x_t, t, cond, context=None):
        out = fwd(x_t, t, cond, context)
        calls.append((x_t.detach(), t.clone(), cond.detach(), out.detach()))
        return out

    def record_encode(clip, batch=None, like=None):
        encoded.append(None if clip is None else clip.detach())
        return enc(clip, batch=batch, like=like)

    net.forward, net.encode_context = record_forward, record_encode
    window = moving_digits(6, frames=14, size=16, digit_size=8, split="train", channels=1)
    g = torch.Generator().manual_seed(4)
    tasks = sample_tasks(6, torch.Generator().manual_seed(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # no update: the recorded outputs stay comparable
    two_stage_step(net, opt, window, lgcvd_alphas_cumprod().float(), g)
    assert len(calls) == 2 and encoded[0] is None  # stage 1: fixed grey global context
    (xt1, t1, cond1, v1), (_, _, cond2, _) = calls
    acp = lgcvd_alphas_cumprod().float()
    x0_a = x0_from_v(xt1, v1, acp[t1].view(-1, 1, 1, 1, 1)).clamp(-1, 1)
    torch.testing.assert_close(encoded[1], x0_a)  # stage 2: context = E(one-step estimate of clip A)
    clip_b = window[:, :, 6:14]
    assert any(t == "prediction" for t in tasks) and any(t != "prediction" for t in tasks)
    for i, task in enumerate(tasks):
        if task == "prediction":
            # local conditions = x0_A's last two frames (model space), masks of positions 0 and 1
            torch.testing.assert_close(cond2[i, 0], x0_a[i, 0, 6], atol=1e-6, rtol=0)
            torch.testing.assert_close(cond2[i, 2], x0_a[i, 0, 7], atol=1e-6, rtol=0)
            torch.testing.assert_close(cond1[i, 0], 2 * window[i, 0, 0] - 1)
        elif task == "unconditional":
            assert torch.equal(cond2[i], torch.full_like(cond2[i], -1.0))
        elif task == "interpolation":
            torch.testing.assert_close(cond2[i, 0], 2 * clip_b[i, 0, 0] - 1)  # ground truth
            torch.testing.assert_close(cond2[i, 2], 2 * clip_b[i, 0, 7] - 1)


def test_sample_clip_deterministic_with_seed():
    net = tiny()
    cond_clip = torch.rand(2, 1, 8, 16, 16)
    pos = torch.tensor([[0, 1], [0, 1]])
    a = sample_clip(net, cond_clip, pos, None, steps=4, generator=torch.Generator().manual_seed(1))
    b = sample_clip(net, cond_clip, pos, None, steps=4, generator=torch.Generator().manual_seed(1))
    c = sample_clip(net, cond_clip, pos, None, steps=4, generator=torch.Generator().manual_seed(2))
    assert a.shape == (2, 1, 8, 16, 16) and torch.equal(a, b) and not torch.allclose(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a[0], a[1])  # batch elements get different noise


def test_predict_interpolate_generate_shapes_and_determinism():
    net = tiny()
    # A fresh attention block's output projection starts near zero (1e-5 scale), so the global
    # context would change the output only at round-off level; give it trained-like weights so
    # the test sees whether the context is wired through, on any CPU.
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "out") and hasattr(m, "q") and isinstance(m.out, torch.nn.Conv2d):
                m.out.weight.mul_(1e4)
    past = torch.rand(1, 3, 2, 16, 16)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    y = predict_video(net, past, 9, steps=3, generator=g())
    assert y.shape == (1, 3, 11, 16, 16)
    # context frames are kept; the output is gray replicated over RGB for a 1-channel model
    torch.testing.assert_close(y[:, :, :2], past.mean(1, keepdim=True).expand(-1, 3, -1, -1, -1))
    assert torch.equal(y[:, 0], y[:, 2])
    assert torch.equal(y, predict_video(net, past, 9, steps=3, generator=g()))
    y1 = predict_video(net, past[:, :, :1], 3, steps=3, generator=g())
    assert y1.shape == (1, 3, 4, 16, 16)
    # without carrying the global context the second clip differs
    y_nc = predict_video(net, past, 9, steps=3, generator=g(), carry_context=False)
    torch.testing.assert_close(y_nc[:, :, :8], y[:, :, :8])
    assert float((y_nc[:, :, 8:] - y[:, :, 8:]).abs().max()) > 1e-3

    vid = torch.rand(1, 1, 3, 16, 16)
    z = interpolate_video(net, vid, 4, steps=3, generator=g())
    assert z.shape == (1, 1, 9, 16, 16)
    torch.testing.assert_close(z[:, :, ::4], vid)
    with pytest.raises(UserError):
        interpolate_video(net, vid, 8, steps=3)

    u = generate_video(net, 12, batch=2, steps=3, generator=g())
    assert u.shape == (2, 3, 12, 16, 16)
    assert torch.equal(u, generate_video(net, 12, batch=2, steps=3, generator=g()))
    with pytest.raises(UserError):
        predict_video(net, torch.rand(1, 3, 2, 15, 16), 2, steps=2)
    with pytest.raises(TypeError, match="unknown sampling option.*stpes"):
        predict_video(net, past, 2, stpes=2)


# ------------------------------------------------------------------------------------------
# Data.
# ------------------------------------------------------------------------------------------


def test_moving_digits_seeded_in_range_and_moving():
    a = moving_digits(3, frames=10, split="test", seed=1)
    b = moving_digits(3, frames=10, split="test", seed=1)
    assert a.shape == (3, 3, 10, 32, 32) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and float(a.mean()) > 0.02
    assert torch.equal(a[:, 0], a[:, 2])  # gray replicated
    assert float((a[:, :, 1:] - a[:, :, :-1]).abs().mean()) > 0.01  # digits move
    # video i does not depend on how many videos are requested; splits differ
    torch.testing.assert_close(moving_digits(1, frames=10, split="test", seed=1, start=2)[0], a[2])
    assert not torch.equal(moving_digits(1, frames=10, split="train", seed=1)[0], a[0])
    with pytest.raises(UserError):
        MovingDigits(2, split="val")


def test_hdf5_and_frame_folder_readers(tmp_path):
    h5py = pytest.importorskip("h5py")  # in the dev extra
    from vidrestore.data.video_clips import FrameFolderVideos, HDF5Videos, open_video_dataset
    from vidrestore.io import write_video

    rng = np.random.default_rng(0)
    vids = [rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8) for n in (5, 7)]
    (tmp_path / "h5" / "train").mkdir(parents=True)
    with h5py.File(tmp_path / "h5" / "train" / "shard_0000.hdf5", "w") as f:
        for i, v in enumerate(vids):
            f.create_dataset(f"len/{i}", data=len(v))
            for t, frame in enumerate(v):
                f.create_dataset(f"{i}/{t}", data=frame)
    ds = open_video_dataset(tmp_path / "h5", "train")
    assert isinstance(ds, HDF5Videos) and len(ds) == 2 and ds.length(1) == 7
    clip = ds.clip(1, 2, 4)
    assert clip.shape == (3, 4, 8, 8)
    np.testing.assert_allclose(clip.permute(1, 2, 3, 0).numpy(), vids[1][2:6] / 255.0, atol=1e-6)
    assert ds.sample(6, torch.Generator().manual_seed(0)).shape == (3, 6, 8, 8)  # only video 1 is long enough

    write_video(tmp_path / "ff" / "a", torch.from_numpy(vids[0]).permute(3, 0, 1, 2).float() / 255)
    fds = open_video_dataset(tmp_path / "ff")
    assert isinstance(fds, FrameFolderVideos) and fds.length(0) == 5
    np.testing.assert_allclose(fds.clip(0, 1, 3).permute(1, 2, 3, 0).numpy(), vids[0][1:4] / 255.0, atol=1e-6)


def test_frechet_distance_closed_form():
    from vidrestore.metrics.fvd import frechet_distance, gaussian_stats

    # diagonal Gaussians: |mu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    d = frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert abs(d - (3 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())) < 1e-9
    f = np.random.default_rng(0).normal(size=(50, 4))
    mu, s = gaussian_stats(f)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8


def test_train_resume_matches_uninterrupted_run_and_export(tmp_path):
    from safetensors.torch import load_file

    from vidrestore.train.lgcvd import TrainConfig, export_weights, train_lgcvd

    small = {k: v for k, v in TINY.items() if k not in ("channels", "frames", "image_size")}
    cfg = lambda steps: TrainConfig(net_overrides=dict(small, image_size=16), size=16, digit_size=8, steps=steps,  # noqa: E731
                                    batch=2, ckpt_every=1, log_every=1, ema_start=1, ema_every=1)
    train_lgcvd(tmp_path / "a", cfg(2), log=lambda m: None)
    train_lgcvd(tmp_path / "b", cfg(1), log=lambda m: None)
    train_lgcvd(tmp_path / "b", cfg(2), resume=True, log=lambda m: None)
    for name in ("model", "ema"):
        a = load_file(str(tmp_path / "a" / "checkpoint" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "b" / "checkpoint" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((tmp_path / "b" / "log.jsonl").read_text().splitlines()) == 2
    with pytest.raises(UserError, match=r"cannot resume .*lr 0.0002 -> 0.001"):
        train_lgcvd(tmp_path / "b", dataclasses.replace(cfg(3), lr=1e-3), resume=True, log=lambda m: None)
    net = from_pretrained(export_weights(tmp_path / "a", tmp_path / "w", card="# card\n"))
    assert isinstance(net, LGCVDUNet) and net.pretrained_config["prediction"] == "v" and net.pretrained_config["steps"] == 2


def test_bundled_digits_model_loads_and_predicts():
    from vidrestore.workflows.lgcvd import load_lgcvd

    net = load_lgcvd()
    cfg = net.pretrained_config
    assert cfg["prediction"] == "v" and cfg["schedule"] == "cosine" and cfg["steps"] == 4038 and cfg["weights"] == "model"
    assert cfg["integer_motion"] and cfg["two_stage"]
    assert sum(p.numel() for p in net.parameters()) == 1_394_312 and net.global_context
    past = moving_digits(1, frames=2, split="test")
    y = predict_video(net, past, 6, steps=2, generator=torch.Generator().manual_seed(0))
    assert y.shape == (1, 3, 8, 32, 32)
    torch.testing.assert_close(y[:, :, :2], past)
    assert float(y[:, :, 2:].mean()) < 0.5  # mostly black frames, like the data


def _centres(x: torch.Tensor) -> torch.Tensor:
    """Intensity centre of mass ``(N, T, 2)`` (row, column) of gray videos ``(N, T, H, W)``."""
    x = x.double()
    ys = torch.arange(x.shape[-2], dtype=torch.float64)
    xs = torch.arange(x.shape[-1], dtype=torch.float64)
    m = x.sum((-1, -2))
    return torch.stack([(x.sum(-1) * ys).sum(-1) / m, (x.sum(-2) * xs).sum(-1) / m], -1)


def test_moving_digits_integer_motion_whole_pixel_constant_velocity():
    kw = dict(frames=16, size=32, split="test", seed=0, num_digits=1, channels=1)
    x = moving_digits(8, integer_motion=True, **kw)[:, 0]
    assert x.shape == (8, 16, 32, 32)
    torch.testing.assert_close(moving_digits(8, integer_motion=True, **kw)[:, 0], x)  # seeded
    mass = x.double().sum((-1, -2))
    assert float((mass - mass[:, :1]).abs().max()) < 1e-6  # the digit never leaves the frame
    d = _centres(x).diff(dim=1)  # (N, T-1, 2) displacement per frame
    assert float((d - d.round()).abs().max()) < 1e-4  # whole pixels in each axis
    d = d.round()
    assert float(d.abs().max()) <= 2
    moving = d.abs().sum(-1) > 0
    assert bool(moving[:, 0].any())
    assert float(moving.double().mean(1).min()) >= 0.8  # both zero only at the odd corner bounce
    for k in range(len(d)):  # the speed per axis is the start velocity's, in {0, 1, 2}, not both zero
        speed = d[k].abs().max(0).values
        assert speed.sum() > 0 and set(speed.tolist()) <= {0.0, 1.0, 2.0}
    # Constant velocity away from bounces: the second difference vanishes on most steps.
    const = ((d[:, 1:] - d[:, :-1]).abs().sum(-1) == 0).double()
    assert float(const.mean(1).min()) >= 0.7 and float(const.mean()) >= 0.8
    # Real-valued velocities (the default) drawn at rounded positions are irregular.
    r = _centres(moving_digits(8, **kw)[:, 0]).diff(dim=1)
    const_r = ((r[:, 1:] - r[:, :-1]).abs().sum(-1) < 1e-4).double()
    assert float(const_r.mean()) < float(const.mean()) - 0.3


def test_moving_digits_default_unchanged_by_integer_motion_option():
    x = moving_digits(2, frames=6, size=32, split="test", seed=0).double()
    w = torch.arange(x.numel(), dtype=torch.float64).reshape(x.shape) / x.numel()
    # Values computed with moving_digits.py of the commit before the integer_motion option.
    assert float(x.sum()) == pytest.approx(2985.0823443741538, rel=1e-9)
    assert float((x * w).sum()) == pytest.approx(1604.3576960725964, rel=1e-9)
    assert torch.equal(moving_digits(2, frames=6, size=32, split="test", seed=0, integer_motion=False).double(), x)
    y = moving_digits(2, frames=6, size=32, split="test", seed=0, integer_motion=True).double()
    assert y.shape == x.shape and not torch.equal(x, y)
    ds = MovingDigits(3, frames=6, split="test", integer_motion=True)
    assert ds.integer_motion is True
    torch.testing.assert_close(ds[1], moving_digits(1, frames=6, split="test", start=1, integer_motion=True)[0])


def _tiny_cfg(steps: int, **kw):
    from vidrestore.train.lgcvd import TrainConfig

    small = {k: v for k, v in TINY.items() if k not in ("channels", "frames", "image_size")}
    return TrainConfig(net_overrides=dict(small, image_size=16), size=16, digit_size=8, steps=steps,
                       batch=2, ckpt_every=100, log_every=1, ema_start=1, ema_every=1, **kw)


def test_train_lgcvd_float16_snapshots(tmp_path):
    from safetensors.torch import load_file

    from vidrestore.train.lgcvd import train_lgcvd

    model = train_lgcvd(tmp_path / "r", _tiny_cfg(4), log=lambda m: None, snapshot_every=2)
    snaps = tmp_path / "r" / "snapshots"
    assert sorted(p.name for p in snaps.iterdir()) == ["step_000002", "step_000004"]
    for name, steps in (("step_000002", 2), ("step_000004", 4)):
        stored = load_file(str(next((snaps / name).glob("*.safetensors"))))
        floats = [v for v in stored.values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float16 for v in floats)
        net = from_pretrained(snaps / name)
        assert isinstance(net, LGCVDUNet) and net.pretrained_config["steps"] == steps
        assert net.pretrained_config["prediction"] == "v"
    # The last snapshot is the exported EMA network, rounded to float16.
    final, snap = from_pretrained(model), from_pretrained(snaps / "step_000004")
    for (k, a), (_, b) in zip(final.state_dict().items(), snap.state_dict().items()):
        assert torch.equal(a.half().float(), b.float()), k
    early = from_pretrained(snaps / "step_000002")
    assert any(not torch.equal(a, b) for a, b in zip(early.state_dict().values(), snap.state_dict().values()))
    # Every weight folder records its training time (the benchmark's cost column reads it).
    import json

    t2, t4 = early.pretrained_config["train_seconds"], snap.pretrained_config["train_seconds"]
    assert 0 < t2 <= t4
    assert json.loads((model / "config.json").read_text())["train_seconds"] > 0
    from vidrestore.train.lgcvd import export_weights

    state = json.loads((tmp_path / "r" / "checkpoint" / "trainer_state.json").read_text())
    exported = from_pretrained(export_weights(tmp_path / "r", tmp_path / "exp"))
    assert exported.pretrained_config["train_seconds"] == round(state["seconds"], 1)
    assert exported.pretrained_config["weights"] == "ema" and exported.pretrained_config["steps"] == 4


def test_train_lgcvd_max_seconds_stops_then_resumes(tmp_path):
    import json

    from safetensors.torch import load_file

    from vidrestore.train.lgcvd import train_lgcvd

    cfg = _tiny_cfg(3, integer_motion=True)
    train_lgcvd(tmp_path / "full", cfg, log=lambda m: None)
    msgs: list[str] = []
    train_lgcvd(tmp_path / "cut", cfg, log=msgs.append, max_seconds=1e-4)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 1 < cfg.steps
    assert any("max_seconds" in m for m in msgs)
    assert json.loads((tmp_path / "cut" / "model" / "config.json").read_text())["steps"] == 1
    saved = json.loads((tmp_path / "cut" / "train_config.json").read_text())
    assert saved["integer_motion"] is True and saved["steps"] == 3
    train_lgcvd(tmp_path / "cut", cfg, resume=True, log=lambda m: None)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 3
    for name in ("model", "ema"):  # the interrupted run continues exactly
        a = load_file(str(tmp_path / "full" / "checkpoint" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "cut" / "checkpoint" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((tmp_path / "cut" / "model" / "config.json").read_text())
    assert card["steps"] == 3 and card["integer_motion"] is True
