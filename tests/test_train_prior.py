"""Training loop of the image prior: files, exact resume, and that the loss goes down."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vidrestore.checkpoint import from_pretrained
from vidrestore.data.images import ImageCropDataset
from vidrestore.diffusion.schedules import alphas_cumprod, linear_betas
from vidrestore.train.ema import EMA
from vidrestore.errors import UserError
from vidrestore.train.prior import PriorTrainConfig as Cfg
from vidrestore.train.prior import build_prior_net, eps_loss, sample_timesteps, train_prior

TINY = dict(model_channels=32, channel_mult=(1, 1), num_res_blocks=1, attention_resolutions=(2,), num_head_channels=32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(3):
        base = rng.integers(0, 256, size=(6, 7, 3)).astype(np.uint8)
        Image.fromarray(base).resize((40 + 8 * i, 36), Image.Resampling.BICUBIC).save(root / f"img{i}.png")
    Image.fromarray(base).resize((30, 30)).save(root / "astronaut.png")  # held out by default
    return root


def _run(data_dir, out, steps, resume=False):
    return train_prior(data_dir, out, Cfg(steps=steps, batch=4, size=16, seed=3, ckpt_every=2, log_every=1, net_kwargs=TINY),
                       resume=resume, num_threads=1, progress=False)


def test_dataset_deterministic_and_holdout(data_dir):
    ds = ImageCropDataset(data_dir, 16, seed=1)
    assert sorted(p.name for p in ds.files) == ["img0.png", "img1.png", "img2.png"]
    a, b = ds.batch(5, 4), ds.batch(5, 4)
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, ds.batch(6, 4))


def test_train_files_and_exact_resume(data_dir, tmp_path):
    full = tmp_path / "full"
    _run(data_dir, full, 3)
    ck = full / "checkpoint"
    for name in ("model.safetensors", "ema.safetensors", "optimizer.pt", "trainer_state.json"):
        assert (ck / name).is_file()
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["step"] == 3 and len(state["loss_history"]) == 3
    torch.load(ck / "optimizer.pt", weights_only=True)
    log = [json.loads(line) for line in (full / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]

    prior = from_pretrained(full / "prior")
    cfg = prior.pretrained_config
    assert cfg["class"] == "adm_unet" and cfg["prediction"] == "eps" and cfg["schedule"] == "linear"
    assert cfg["num_timesteps"] == 1000 and cfg["trained_steps"] == 3
    assert all(v.dtype == torch.float16 for v in load_file(str(full / "prior" / "model.safetensors")).values())

    part = tmp_path / "part"
    _run(data_dir, part, 2)
    assert json.loads((part / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    _run(data_dir, part, 3, resume=True)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(str(ck / name)), load_file(str(part / "checkpoint" / name))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    log = [json.loads(line) for line in (part / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]


def _tiny_problem(data_seed):
    """A seeded tiny prior net, the linear schedule and one batch (x0, t, noise)."""
    torch.manual_seed(0)
    net = build_prior_net(16, TINY)
    abar = alphas_cumprod(linear_betas(1000)).float()
    g = torch.Generator().manual_seed(data_seed)
    x0 = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    t = sample_timesteps(4, g)
    noise = torch.randn(x0.shape, generator=g)
    return net, abar, x0, t, noise


def test_loss_decreases_on_fixed_batch():
    net, abar, x0, t, noise = _tiny_problem(0)
    assert (t[2:] < 300).all()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    with torch.no_grad():
        before = float(eps_loss(net, x0, t, noise, abar))
    for _ in range(5):
        loss = eps_loss(net, x0, t, noise, abar)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(eps_loss(net, x0, t, noise, abar))
    assert after < before


def test_ema_warmup_and_copy():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    target = torch.nn.Linear(2, 2)
    ema.copy_to(target)
    assert not torch.equal(target.weight, net.weight)


def test_bf16_autocast_loss_close_and_trains(data_dir, tmp_path):
    """bf16 autocast: the loss agrees with float32 to bf16 precision, training runs and weights stay float32."""
    net, abar, x0, t, noise = _tiny_problem(1)
    with torch.no_grad():
        ref = float(eps_loss(net, x0, t, noise, abar))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = eps_loss(net, x0, t, noise, abar)
    assert low.dtype == torch.float32
    assert abs(float(low) - ref) < 0.03 * ref
    out = tmp_path / "bf16"
    train_prior(data_dir, out, Cfg(steps=2, batch=2, size=16, net_kwargs=TINY, amp="bf16"), progress=False)
    sd = load_file(str(out / "checkpoint" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in sd.values())
    with pytest.raises(UserError):
        train_prior(data_dir, out, Cfg(steps=1, batch=2, size=16, net_kwargs=TINY, amp="fp8"), progress=False)


def test_lr_schedule_constant_then_cosine_to_a_tenth(data_dir, tmp_path):
    from vidrestore.train.prior import lr_at

    assert lr_at(0, 100, 1e-3, 0) == lr_at(99, 100, 1e-3, 0) == 1e-3
    assert lr_at(79, 100, 1e-3, 20) == 1e-3
    vals = [lr_at(s, 100, 1e-3, 20) for s in range(80, 100)]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    assert abs(vals[-1] - 1e-4) < 1e-12
    out = tmp_path / "decay"
    train_prior(data_dir, out, Cfg(steps=3, batch=2, size=16, net_kwargs=TINY, log_every=1, decay_steps=2), progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([3e-4, lr_at(1, 3, 3e-4, 2), 3e-5])
    with pytest.raises(UserError):
        train_prior(data_dir, out, Cfg(steps=3, batch=2, size=16, net_kwargs=TINY, decay_steps=-1), progress=False)


def test_run_folder_scaffold_round_trip(tmp_path):
    """save_checkpoint/load_checkpoint (the one run-folder scaffold of every trainer): atomic
    folder, network + EMA + optimizer + state restored exactly, mismatched settings refused,
    log trimmed back to the checkpoint."""
    import json

    from torch import nn

    from vidrestore.errors import UserError
    from vidrestore.train.ema import EMA
    from vidrestore.train.run import has_checkpoint, load_checkpoint, save_checkpoint, trim_log

    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ema = EMA(net, 0.9)
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    ema.update(net)
    ck = tmp_path / "checkpoint"
    save_checkpoint(ck, net, opt, {"step": 7, "seed": 1, "ema_updates": ema.num_updates}, ema=ema, config={"w": 4})
    assert has_checkpoint(ck) and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    net2 = nn.Linear(4, 3)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-2)
    ema2 = EMA(net2, 0.9)
    state = load_checkpoint(ck, net2, opt2, ema=ema2, expect={"seed": 1}, config={"w": 4})
    assert state["step"] == 7 and ema2.num_updates == ema.num_updates
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), ema2.state_dict().values()))
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    with pytest.raises(UserError, match="seed=1, this run 2"):
        load_checkpoint(ck, net2, opt2, expect={"seed": 2})
    with pytest.raises(UserError, match="different network config"):
        load_checkpoint(ck, net2, opt2, config={"w": 5})
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (5, 7, 9, 11)))
    trim_log(log, 7)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [5, 7]


def test_multiscale_rotations_and_holdout(data_dir, tmp_path):
    """--extra-sizes alternates crop sides with the same pixels per step, --rotate draws the 8
    symmetries, --holdout-file names are never loaded; a resume with other settings is refused."""
    ds = ImageCropDataset(data_dir, 32, seed=1, rotate=True)
    small = ds.batch(0, 3, 16)
    assert small.shape == (3, 3, 16, 16) and torch.equal(small, ds.batch(0, 3, 16))
    with pytest.raises(UserError, match="crop 40"):
        ds.batch(0, 1, 40)
    plain = ImageCropDataset(data_dir, 16, seed=1)
    assert not torch.equal(ImageCropDataset(data_dir, 16, seed=1, rotate=True).batch(2, 8), plain.batch(2, 8))
    seen = []

    class Spy(ImageCropDataset):
        def batch(self, index, batch_size, crop=None):
            seen.append((batch_size, crop))
            return super().batch(index, batch_size, crop)

    out = tmp_path / "ms"
    import vidrestore.data.images as images

    real = images.ImageCropDataset
    images.ImageCropDataset = Spy
    try:
        train_prior(data_dir, out, Cfg(steps=2, batch=4, size=16, seed=3, ckpt_every=2, log_every=1, net_kwargs=TINY,
                                       extra_sizes=(32,), rotate=True, holdout=("img2.png",)), num_threads=1, progress=False)
    finally:
        images.ImageCropDataset = real
    assert seen == [(4, 16), (1, 32)]
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["scales"] == [16, 32] and cfg["rotate"] is True and cfg["holdout"] == ["img2.png"]
    with pytest.raises(UserError, match="scales"):
        train_prior(data_dir, out, Cfg(steps=3, batch=4, size=16, seed=3, ckpt_every=2, net_kwargs=TINY, rotate=True),
                    num_threads=1, progress=False, resume=True)


def test_resume_with_other_settings_is_refused_naming_the_fields(data_dir, tmp_path):
    """A resume may raise ``steps`` and change ``decay_steps`` and ``amp``; any other field of the
    config that differs from the run's train_config.json is refused (a ValueError naming each
    field with both values), and the saved config is left as it was."""
    out = tmp_path / "run"
    base = Cfg(steps=1, batch=2, size=16, seed=3, log_every=1, net_kwargs=TINY)
    train_prior(data_dir, out, base, num_threads=1, progress=False)
    saved = (out / "train_config.json").read_text()
    assert json.loads(saved)["lr"] == 3e-4 and json.loads(saved)["model"] == "prior"
    with pytest.raises(ValueError, match=r"lr 0\.0003 -> 0\.001; ema_decay 0\.999 -> 0\.99 \(only amp, decay_steps, steps"):
        train_prior(data_dir, out, replace(base, steps=2, lr=1e-3, ema_decay=0.99), num_threads=1, progress=False, resume=True)
    assert (out / "train_config.json").read_text() == saved
    train_prior(data_dir, out, replace(base, steps=2, decay_steps=1, amp="bf16"), num_threads=1, progress=False, resume=True)
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    assert json.loads((out / "train_config.json").read_text())["decay_steps"] == 1


def test_warm_start_from_a_prior_folder_with_warmup(data_dir, tmp_path):
    from vidrestore.train.prior import lr_at

    assert [lr_at(s, 10, 1e-3, 0, 4) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    first = tmp_path / "first"
    train_prior(data_dir, first, Cfg(steps=2, batch=2, size=16, seed=1, net_kwargs=TINY, log_every=1), progress=False)
    src = from_pretrained(first / "prior")
    # learning rate 0: the exported EMA equals the source weights exactly (float16 values re-exported)
    warm = tmp_path / "warm"
    train_prior(data_dir, warm, Cfg(steps=1, batch=2, size=16, seed=5, lr=0.0, net_kwargs=TINY, init_from=str(first / "prior")), progress=False)
    got = from_pretrained(warm / "prior")
    for (k, a), b in zip(src.state_dict().items(), got.state_dict().values()):
        assert torch.equal(a, b), k
    # training continues from those weights with the warm-up ramp; the config records the source
    out = tmp_path / "warm2"
    train_prior(data_dir, out, Cfg(steps=2, batch=2, size=16, net_kwargs=TINY, log_every=1, init_from=str(first / "prior"),
                                  warmup_steps=2), progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([1.5e-4, 3e-4])
    assert json.loads((out / "train_config.json").read_text())["init_from"] == str(first / "prior")
    # another architecture is refused in one line
    with pytest.raises(UserError, match="architecture differs"):
        train_prior(data_dir, tmp_path / "bad", Cfg(steps=1, batch=2, size=16, net_kwargs={**TINY, "model_channels": 64},
                                                    init_from=str(first / "prior")), progress=False)
