"""PVDNet training-recipe options (schedule, interior loss, last-frame steps, blur curriculum,
blur families, medium-res4 preset) and that the defaults leave earlier runs untouched."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidrestore.data.blur_synth import (BLUR_FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, BlurSynthConfig, SyntheticBlurClips,
                                        blur_strength, family_config, render_clip)
from vidrestore.errors import UserError
from vidrestore.nets import LITEFLOWNET_PRESETS, PVDNET_PRESETS, LiteFlowNet, PVDNet, PVDNetDeblur
from vidrestore.train.pvdnet import (PVDNetTrainConfig, curriculum_strength, interior_mse, pvdnet_clip_steps, train_pvdnet,
                                     warmup_cosine_lr)

TINY_PVD = {"pv_ch": 4, "img_ch": 4, "ch": 4, "mid_ch": 4, "low_ch": 4, "num_blocks": 1}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _photo(h=160, w=200):
    from skimage import data

    img = data.astronaut()[:h, :w]
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0


def _render(cfg, seed=(3, 1), frames=4, size=(48, 56)):
    return render_clip(_photo(), frames, size, np.random.default_rng(list(seed)), cfg)


def _psnr(a, b):
    return float(10 * torch.log10(1 / (a - b).square().mean()))


def _photo_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray((_photo().permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / "train1.png")
    return folder


# --------------------------------------------------------------------------- schedule, curriculum, loss


def test_warmup_cosine_lr_values():
    lr, eta = 1.0, 1e-3
    assert warmup_cosine_lr(0, 110, lr, eta, 10) == 0.0
    assert warmup_cosine_lr(5, 110, lr, eta, 10) == pytest.approx(0.5)
    assert warmup_cosine_lr(10, 110, lr, eta, 10) == pytest.approx(1.0)
    assert warmup_cosine_lr(60, 110, lr, eta, 10) == pytest.approx(eta + 0.5 * (1 - eta))  # half-way down the cosine
    assert warmup_cosine_lr(85, 110, lr, eta, 10) == pytest.approx(eta + 0.5 * (1 - eta) * (1 + np.cos(0.75 * np.pi)))
    assert warmup_cosine_lr(110, 110, lr, eta, 10) == pytest.approx(eta)
    assert warmup_cosine_lr(500, 110, lr, eta, 10) == pytest.approx(eta)
    assert warmup_cosine_lr(0, 100, lr, eta, 0) == pytest.approx(1.0)  # no warm-up: starts at lr


def test_curriculum_strength_and_blur_strength():
    assert curriculum_strength(0, 100) == pytest.approx(0.3)
    assert curriculum_strength(50, 100) == pytest.approx(0.65)
    assert curriculum_strength(100, 100) == curriculum_strength(7, 0) == 1.0
    cfg = BlurSynthConfig()
    assert blur_strength(cfg, 1.0) is cfg
    weak = blur_strength(cfg, 0.3)
    assert weak.max_speed == pytest.approx(7.2) and weak.exposure == pytest.approx((0.3, 0.3))
    assert blur_strength(cfg, 0.9).exposure == pytest.approx((0.75, 0.9))
    assert replace(weak, max_speed=cfg.max_speed, exposure=cfg.exposure) == cfg  # nothing else changes


def test_weaker_curriculum_data_are_less_blurred_and_strength_one_is_the_default(tmp_path):
    ds = SyntheticBlurClips.from_folders([_photo_folder(tmp_path)], size=32, num_frames=3, seed=5)
    full, weak = ds.batch(0, 4), ds.batch(0, 4, strength=0.3)
    assert all(torch.equal(full[k], ds.batch(0, 4, strength=1.0)[k]) for k in full)

    def blur(b):
        return float((b["blurry"] - b["sharp"]).abs().mean())

    assert blur(weak) < 0.6 * blur(full)


def test_interior_loss_is_the_loss_of_the_central_crop():
    torch.manual_seed(0)
    out, target = torch.randn(2, 3, 48, 48), torch.randn(2, 3, 48, 48)
    assert interior_mse(out, target, 8) == F.mse_loss(out[..., 8:40, 8:40], target[..., 8:40, 8:40])
    assert interior_mse(out, target, 0) == F.mse_loss(out, target)
    # Through the recurrent steps: an identity network (zero last conv) outputs the blurry
    # frame, so each step's loss is the MSE of blurry vs sharp in [-1, 1] on the centre.
    model = PVDNetDeblur("small", TINY_PVD)
    torch.nn.init.zeros_(model.pvdnet.end.weight)
    c = _render(BlurSynthConfig(max_speed=8.0), frames=4, size=(48, 48))
    blurry, sharp = c["blurry"][None], c["sharp"][None]
    zero = torch.zeros(1, 2, 4, 48, 48)
    with torch.no_grad():
        inner = pvdnet_clip_steps(model, blurry, sharp, None, flows=zero, margin=8)
        whole = pvdnet_clip_steps(model, blurry, sharp, None, flows=zero)
    for t, (a, b) in enumerate(zip(inner, whole), start=1):
        crop = (2 * blurry[:, :, t] - 2 * sharp[:, :, t])[..., 8:40, 8:40]
        assert a == pytest.approx(float(crop.square().mean()), rel=1e-5)
        assert a != pytest.approx(b, rel=1e-3)


def test_no_next_frame_step_is_the_inference_rule_at_the_last_frame():
    """The last step without a next frame sees its own frame as the next one (deblur_frames'
    rule at the end of a video): the same losses as a clip whose last frame repeats."""
    torch.manual_seed(0)
    model = PVDNetDeblur("small", TINY_PVD)
    clips = [_render(BlurSynthConfig(max_speed=8.0), seed=(4, k), frames=5, size=(32, 32)) for k in range(2)]
    blurry, sharp = torch.stack([c["blurry"] for c in clips]), torch.stack([c["sharp"] for c in clips])
    flows = torch.stack([c["flow"] for c in clips])
    repeated = blurry.clone()
    repeated[0, :, 4] = blurry[0, :, 3]  # clip 0 only

    with torch.no_grad():
        def run(b, mask=None):
            return pvdnet_clip_steps(model, b, sharp, None, flows=flows, no_next=mask)

        plain = run(blurry)
        assert run(blurry, torch.tensor([False, False])) == plain
        mixed = run(blurry, torch.tensor([True, False]))
    assert mixed == run(repeated)
    assert mixed[:2] == plain[:2] and mixed[2] != plain[2]  # only the last step changes


# --------------------------------------------------------------------------- blur families


def test_family_lists_and_unknown_family_error():
    assert HELDOUT_FAMILIES == ("srgb-average", "compression")
    assert set(TRAIN_FAMILIES) | set(HELDOUT_FAMILIES) == set(BLUR_FAMILIES) and not set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)
    for name in ("drift", "rotation", "zoom", "stop-and-go", "shake", "short-exposure", "noise"):
        assert name in TRAIN_FAMILIES
    drift = family_config("drift")
    assert drift.max_rot == drift.max_zoom == drift.max_shake == drift.stop_go_prob == 0 and drift.families == ()
    assert family_config("short-exposure").exposure == (0.5, 0.75)
    assert family_config("compression").jpeg_quality == (60, 90)
    assert family_config("drift", BlurSynthConfig(max_speed=5.0)).max_speed == 5.0  # on top of the base
    with pytest.raises(UserError, match="unknown blur family 'blurry'; choose from drift, rotation, zoom, .*compression"):
        family_config("blurry")
    with pytest.raises(UserError, match="unknown blur family 'nope'"):
        BlurSynthConfig(families=("drift", "nope"))
    assert BlurSynthConfig(families=["drift"]).families == ("drift",)


def test_srgb_average_is_darker_than_the_linear_light_average():
    lin, srgb = _render(BlurSynthConfig()), _render(family_config("srgb-average"))
    assert torch.equal(lin["sharp"], srgb["sharp"]) and torch.equal(lin["flow"], srgb["flow"])
    diff = lin["blurry"] - srgb["blurry"]
    assert diff.min() > -1e-5  # power-mean inequality: the gamma-2.2 mean is never below the plain mean
    assert diff.mean() > 1e-3 and diff.max() > 0.02


def test_compression_changes_the_frames_a_little():
    clean, jpeg = _render(BlurSynthConfig()), _render(family_config("compression"))
    assert torch.equal(clean["sharp"], jpeg["sharp"])
    assert not torch.equal(clean["blurry"], jpeg["blurry"])
    assert 30 < _psnr(clean["blurry"], jpeg["blurry"]) < 60
    assert torch.equal(jpeg["blurry"] * 255, (jpeg["blurry"] * 255).round())  # 8-bit decoded frames


def test_noise_family_adds_signal_dependent_high_frequency_noise():
    clean, noisy = _render(BlurSynthConfig(), size=(64, 64)), _render(family_config("noise"), size=(64, 64))
    assert torch.equal(clean["sharp"], noisy["sharp"])

    def hf(x):  # energy of the Laplacian
        lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
        return float(lap.square().mean())

    assert hf(noisy["blurry"]) > 2 * hf(clean["blurry"])
    x, r = clean["blurry"], noisy["blurry"] - clean["blurry"]
    bright, dark = r[x > 0.6].std(), r[(x > 0.1) & (x < 0.25)].std()
    assert bright > 1.5 * dark  # Poisson-like: brighter pixels are noisier


def test_motion_families_shape_the_flow_and_short_exposure_blurs_less():
    def spread(c):  # how much the flow varies over the frame (0 for a pure translation)
        return float(c["flow"][:, 1:].std((2, 3)).mean())

    assert spread(_render(family_config("drift"))) < 1e-4
    assert spread(_render(family_config("rotation"))) > 0.05
    assert spread(_render(family_config("zoom"))) > 0.05

    def blur(c):
        return float((c["blurry"] - c["sharp"]).abs().mean())

    seeds = [(9, k) for k in range(4)]
    short = np.mean([blur(_render(family_config("short-exposure"), seed=s)) for s in seeds])
    long = np.mean([blur(_render(BlurSynthConfig(), seed=s)) for s in seeds])
    assert short < 0.85 * long


def test_family_draws_are_seeded_and_the_default_config_is_unchanged(tmp_path):
    folder = _photo_folder(tmp_path)
    cfg = BlurSynthConfig(families=TRAIN_FAMILIES + HELDOUT_FAMILIES)
    a = SyntheticBlurClips.from_folders([folder], size=32, num_frames=3, seed=2, config=cfg)
    b = SyntheticBlurClips.from_folders([folder], size=32, num_frames=3, seed=2, config=cfg)
    for k in range(3):
        ca, cb = a.clip(k), b.clip(k)
        assert all(torch.equal(ca[key], cb[key]) for key in ca)
    assert not torch.equal(a.clip(0)["blurry"], a.clip(1)["blurry"])
    jpeg = SyntheticBlurClips.from_folders([folder], size=32, num_frames=3, config=BlurSynthConfig(families=("compression",)))
    x = jpeg.clip(0)["blurry"] * 255
    assert torch.equal(x, x.round())
    # a config with every new field at its default renders exactly as before the fields existed
    explicit = BlurSynthConfig(linear_light=True, noise_gain=0.0, jpeg_quality=None, families=())
    assert explicit == BlurSynthConfig()


# --------------------------------------------------------------------------- capacity


def test_medium_res4_preset_adds_quarter_resolution_blocks():
    med, res4 = PVDNet(**PVDNET_PRESETS["medium"]), PVDNet(**PVDNET_PRESETS["medium-res4"])
    n_med, n_res4 = (sum(p.numel() for p in m.parameters()) for m in (med, res4))
    assert n_med == 1_875_395 and n_res4 == 2_871_875
    assert len(res4.rbs) == 12 and len(med.rbs) == 6
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert res4(torch.rand(1, 25, 32, 32), x, x, x).shape == (1, 3, 32, 32)


# --------------------------------------------------------------------------- training runs


def test_recipe_run_with_zero_flow_resumes_exactly(tmp_path, monkeypatch):
    folder = _photo_folder(tmp_path)
    shapes = []
    batch = SyntheticBlurClips.batch

    def recording_batch(self, index, batch_size, strength=1.0):
        shapes.append((index, tuple(self.size), strength))
        return batch(self, index, batch_size, strength)

    monkeypatch.setattr(SyntheticBlurClips, "batch", recording_batch)
    cfg = PVDNetTrainConfig(steps=6, batch=1, size=32, frames=5, preset="small", flow_source="zero", schedule="warmup-cosine",
                            warmup_steps=2, margin=8, no_next_prob=0.5, curriculum_steps=2, ckpt_every=3, log_every=3,
                            blur=BlurSynthConfig(families=("drift", "noise")))
    kw = dict(progress=False)
    full = train_pvdnet([folder], tmp_path / "a", cfg, **kw)
    assert shapes[:2] == [(0, (48, 48), pytest.approx(0.3)), (1, (48, 48), 1.0)]  # margin: rendered 48 wide; curriculum
    train_pvdnet([folder], tmp_path / "b", replace(cfg, steps=3), **kw)
    resumed = train_pvdnet([folder], tmp_path / "b", cfg, resume=True, **kw)
    for (k, v), (_, w) in zip(full.pvdnet.state_dict().items(), resumed.pvdnet.state_dict().items()):
        torch.testing.assert_close(v, w, msg=k)  # (the unused BIMNet of a zero-flow run is not seeded)
    state = json.loads((tmp_path / "b" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["margin"] == 8 and state["blur_families"] == ["drift", "noise"]
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([warmup_cosine_lr(s, 6, 3e-4, 3e-7, 2) for s in (3, 6)])
    card = json.loads((tmp_path / "a" / "pvdnet" / "config.json").read_text())
    assert card["schedule"] == "warmup-cosine" and card["curriculum_steps"] == 2


def test_cli_recipe_options_train_and_resume(tmp_path):
    from click.testing import CliRunner

    from vidrestore.cli.main import cli

    folder = _photo_folder(tmp_path)
    out = tmp_path / "run"
    args = ["train", "pvdnet", "--data", str(folder), "--out", str(out), "--flow", "zero", "--batch", "1", "--size", "32",
            "--frames", "5", "--schedule", "warmup-cosine", "--warmup-steps", "1", "--margin", "8", "--no-next-prob", "0.5",
            "--curriculum-steps", "2", "--families", "drift,noise", "--threads", "1"]
    runner = CliRunner()
    r = runner.invoke(cli, args + ["--steps", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["margin"] == 8 and saved["no_next_prob"] == 0.5 and saved["blur"]["families"] == ["drift", "noise"]
    r = runner.invoke(cli, args + ["--steps", "4", "--resume"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 4
    for cmd, extra in (("pvdnet", ["--families", "drift,bogus"]), ("bimnet", ["--families", "bogus"]),
                       ("pvdnet", ["--margin", "3"]), ("pvdnet", ["--warmup-steps", "5"])):
        r = runner.invoke(cli, ["train", cmd, "--data", str(folder), "--out", str(tmp_path / "bad"), *extra], catch_exceptions=False)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert r.output.startswith("vidrestore: error:")
    assert not (tmp_path / "bad").exists()
    r = runner.invoke(cli, ["train", "pvdnet", "--data", "x", "--out", "y", "--families", "bogus"], catch_exceptions=False)
    assert all(name in r.output for name in BLUR_FAMILIES)
    from vidrestore.cli.main import _blur_config

    assert _blur_config("train").families == TRAIN_FAMILIES and _blur_config(" drift , noise").families == ("drift", "noise")
    assert _blur_config("") == BlurSynthConfig()
    help_text = " ".join(runner.invoke(cli, ["train", "pvdnet", "-h"]).output.split()).replace("- ", "-")  # undo wrapping
    assert all(name in help_text for name in BLUR_FAMILIES) and "medium-res4" in help_text


def test_run_from_before_the_new_blur_fields_resumes(tmp_path):
    """A run folder whose train_config.json predates the new BlurSynthConfig fields resumes
    (they are read as their defaults); a real difference is still refused."""
    from vidrestore.checkpoint import save_pretrained

    torch.manual_seed(0)
    save_pretrained(LiteFlowNet(**LITEFLOWNET_PRESETS["small"]), tmp_path / "bim")
    clips = [_render(BlurSynthConfig(max_speed=4.0), seed=(7, k), frames=3, size=(32, 32)) for k in range(2)]
    data = {k: torch.stack([c[k] for c in clips]) for k in clips[0]}

    class Fixed:
        def batch(self, index, batch_size):
            return data

    cfg = PVDNetTrainConfig(bimnet=tmp_path / "bim", steps=2, batch=2, size=32, frames=3, preset="small", ckpt_every=1, log_every=1)
    kw = dict(progress=False, dataset=Fixed())
    train_pvdnet(None, tmp_path / "r", replace(cfg, steps=1), **kw)
    path = tmp_path / "r" / "train_config.json"
    old = json.loads(path.read_text())
    for key in ("linear_light", "noise_gain", "jpeg_quality", "families"):
        del old["blur"][key]
    for key in ("schedule", "warmup_steps", "margin", "no_next_prob", "curriculum_steps"):
        del old[key]
    path.write_text(json.dumps(old))
    train_pvdnet(None, tmp_path / "r", cfg, resume=True, **kw)
    assert json.loads((tmp_path / "r" / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    with pytest.raises(UserError, match="blur"):
        train_pvdnet(None, tmp_path / "r", replace(cfg, steps=3, blur=BlurSynthConfig(families=("drift",))), resume=True, **kw)


def test_grow_pvdnet_cnn_starts_as_the_smaller_network_and_rejects_other_widths():
    from vidrestore.nets.pvdnet import PVDNET_PRESETS, PVDNet
    from vidrestore.train.pvdnet import grow_pvdnet_cnn
    from vidrestore.errors import UserError

    torch.manual_seed(0)
    small = PVDNet(**{**PVDNET_PRESETS["small"], "num_blocks": 2})
    for p in small.parameters():  # non-trivial weights, so the identity claim is tested on real values
        p.data.normal_(0, 0.05)
    big = PVDNet(**{**PVDNET_PRESETS["small"], "num_blocks": 5})
    grow_pvdnet_cnn(big, small)
    g = torch.Generator().manual_seed(1)
    vol, cur, prev, nxt = (torch.rand(2, c, 32, 32, generator=g) for c in (25, 3, 3, 3))
    with torch.no_grad():
        a, b = small(vol, cur, prev, nxt), big(vol, cur, prev, nxt)
    assert a.abs().mean() > 1e-3
    torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    # the new blocks learn: their first conv keeps its random init
    assert big.rbs[4].body[0].weight.abs().sum() > 0 and big.rbs[4].body[2].weight.abs().sum() == 0
    with pytest.raises(UserError, match="fewer residual blocks"):
        grow_pvdnet_cnn(PVDNet(**PVDNET_PRESETS["medium"]), small)
    with pytest.raises(UserError):
        grow_pvdnet_cnn(small, big)
