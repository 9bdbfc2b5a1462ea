"""load_prior: guided-diffusion .pt files, diffusers folders, vidrestore folders, the bundled prior.

The ADM checkpoints are the reference state dicts of ``tests/data/adm_ref`` (made with the
upstream guided-diffusion ``UNetModel``, see its README), written with ``torch.save`` in the
upstream key format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore import priors
from vidrestore.checkpoint import save_pretrained
from vidrestore.diffusion import alphas_cumprod, linear_betas
from vidrestore.errors import UserError
from vidrestore.nets import ADMUNet
from vidrestore.priors import Prior, denoise_image, load_prior, make_grid, sample_prior_grid

REF = Path(__file__).parent / "data" / "adm_ref"
META = json.loads((REF / "reference.json").read_text())

#: guided-diffusion flags equivalent to the ADMUNet kwargs of reference case "a_ss_updown".
FLAGS_A = dict(
    image_size=16,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,1",
    attention_resolutions="16,8",  # feature-map sizes -> downsample rates (1, 2)
    num_head_channels=16,
    learn_sigma=True,
    use_scale_shift_norm=True,
    resblock_updown=True,
)


def _ref(name):
    return torch.load(REF / f"{name}.pt", weights_only=True)


@pytest.fixture
def ckpt_a(tmp_path):
    path = tmp_path / "tiny_adm.pt"
    torch.save(_ref("a_ss_updown")["state_dict"], path)
    return path


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------
# guided-diffusion checkpoints
# ---------------------------------------------------------------------------------------------


def test_adm_flags_match_reference_kwargs():
    from vidrestore.nets import adm_from_flags

    assert adm_from_flags(**FLAGS_A).config == ADMUNet(**META["configs"]["a_ss_updown"]).config


def test_adm_pt_loads_strict_and_reproduces_upstream(ckpt_a):
    ref = _ref("a_ss_updown")
    prior = load_prior(ckpt_a, **FLAGS_A)
    assert isinstance(prior, Prior) and prior.kind == "adm" and prior.name == "tiny_adm"
    assert prior.multiple == 2 and prior.image_size == 16
    assert prior.alphas_cumprod.shape == (1000,)
    torch.testing.assert_close(prior.alphas_cumprod, alphas_cumprod(linear_betas(1000)))
    with torch.no_grad():
        out = prior.net(ref["x"], ref["t"])  # upstream signature, raw 6-channel output
    torch.testing.assert_close(out, ref["out"], atol=1e-5, rtol=1e-5)
    # eps = first 3 channels; x0 by Ho et al. eq. 4.
    t = torch.tensor([3, 711])
    with torch.no_grad():
        raw = prior.net(ref["x"], t)
        eps, x0 = prior.eps(ref["x"], t), prior.x0(ref["x"], t)
    abar = prior.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(eps, raw[:, :3])
    torch.testing.assert_close(x0, (ref["x"] - (1 - abar).sqrt() * raw[:, :3]) / abar.sqrt(), atol=1e-5, rtol=1e-5)


def test_adm_preset_with_flag_overrides_and_inference(ckpt_a, monkeypatch):
    monkeypatch.setitem(priors.ADM_PRESETS, "tiny-test", dict(FLAGS_A, diffusion_steps=1000, noise_schedule="linear"))
    ref = _ref("a_ss_updown")
    by_preset = load_prior(ckpt_a, preset="tiny-test")
    inferred = load_prior(ckpt_a)  # no preset, no flags: matched against the presets' shapes
    assert "inferred" in inferred.config["architecture"]
    with torch.no_grad():
        for p in (by_preset, inferred):
            torch.testing.assert_close(p.net(ref["x"], ref["t"]), ref["out"], atol=1e-5, rtol=1e-5)
    # A flag override on top of a preset changes the architecture -> mismatch naming the preset.
    with pytest.raises(UserError, match="tiny-test") as e:
        load_prior(ckpt_a, preset="tiny-test", num_channels=64)
    assert "shape mismatch" in _one_line(e)


def test_adm_class_conditional_with_adm_kwargs(tmp_path):
    ref = _ref("b_plain_cls_neworder_pool")
    path = tmp_path / "cls.pth"
    torch.save({"state_dict": ref["state_dict"]}, path)  # wrapped state dicts are unwrapped
    kwargs = META["configs"]["b_plain_cls_neworder_pool"]
    with pytest.raises(UserError, match="class_label"):
        load_prior(path, adm_kwargs=kwargs)
    prior = load_prior(path, adm_kwargs=kwargs, class_label=7)
    with torch.no_grad():
        torch.testing.assert_close(prior.net(ref["x"], ref["t"], ref["y"]), ref["out"], atol=1e-5, rtol=1e-5)
        t = torch.tensor([3, 711])
        expect = prior.net(ref["x"], t, torch.tensor([7, 7]))
        torch.testing.assert_close(prior.eps(ref["x"], t), expect)


def test_adm_missing_and_unexpected_keys_and_shapes(tmp_path):
    state = dict(_ref("a_ss_updown")["state_dict"])
    missing = dict(state)
    del missing["middle_block.1.qkv.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(UserError, match=r"missing key 'middle_block\.1\.qkv\.weight'") as e:
        load_prior(tmp_path / "missing.pt", **FLAGS_A)
    assert "guided-diffusion flags" in _one_line(e)  # names the expected architecture

    extra = dict(state, **{"bogus.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(UserError, match="unexpected key 'bogus.weight'") as e:
        load_prior(tmp_path / "extra.pt", **FLAGS_A)
    _one_line(e)

    wrong = dict(state)
    wrong["out.2.weight"] = torch.zeros(3, 32, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(UserError, match=r"out\.2\.weight.*\(3, 32, 3, 3\).*\(6, 32, 3, 3\)") as e:
        load_prior(tmp_path / "wrong.pt", **FLAGS_A)
    _one_line(e)


def test_adm_architecture_required_when_not_inferable(ckpt_a):
    with pytest.raises(UserError, match="adm-ffhq256.*adm-imagenet256-uncond") as e:
        load_prior(ckpt_a)
    _one_line(e)


def test_source_errors(tmp_path, ckpt_a):
    with pytest.raises(UserError, match="never downloads") as e:
        load_prior("adm-ffhq256")
    _one_line(e)
    with pytest.raises(UserError, match="prior not found"):
        load_prior(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read") as e:
        load_prior(tmp_path / "junk.pt", **FLAGS_A)
    _one_line(e)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(UserError, match="not a state dict"):
        load_prior(tmp_path / "list.pt", **FLAGS_A)
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(UserError, match="unsupported prior file"):
        load_prior(tmp_path / "weights.npz")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="not a prior folder"):
        load_prior(tmp_path / "empty_dir")
    with pytest.raises(UserError, match="unknown option bogus"):
        load_prior(ckpt_a, bogus=1, **FLAGS_A)
    with pytest.raises(UserError, match="unknown ADM preset"):
        load_prior(ckpt_a, preset="adm-nope")


# ---------------------------------------------------------------------------------------------
# vidrestore folders and the bundled prior
# ---------------------------------------------------------------------------------------------


def _tiny_folder(tmp_path, **card):
    ref = _ref("a_ss_updown")
    net = ADMUNet(**META["configs"]["a_ss_updown"])
    net.load_state_dict(ref["state_dict"])
    return save_pretrained(net, tmp_path / "tiny", card={"prediction": "eps", "schedule": "linear",
                                                          "num_timesteps": 1000, **card})


def test_vidrestore_folder_and_single_file(tmp_path):
    ref = _ref("a_ss_updown")
    folder = _tiny_folder(tmp_path, prediction="x0")
    prior = load_prior(folder)
    assert prior.kind == "vidrestore" and prior.prediction == "x0" and prior.name == "tiny"
    single = load_prior(folder / "model.safetensors", prediction="eps")
    assert single.prediction == "eps"
    with torch.no_grad():
        torch.testing.assert_close(single.net(ref["x"], ref["t"]), ref["out"], atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="unknown option num_channels"):
        load_prior(folder, num_channels=3)
    # float16 network, float32 input -> float32 output close to the float32 network.
    half = load_prior(folder, dtype=torch.float16, prediction="eps")
    assert half.dtype == torch.float16
    x = ref["x"] * 0.5
    with torch.no_grad():
        e16, e32 = half.eps(x, 500), single.eps(x, 500)
    assert e16.dtype == torch.float32
    torch.testing.assert_close(e16, e32, atol=0.1, rtol=0.05)


def test_bundled_prior_missing_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(priors.registry, "bundled_prior_dir", lambda name="default": tmp_path / f"prior-{name}")
    with pytest.raises(UserError, match="bundled prior is missing") as e:
        load_prior()
    _one_line(e)


def test_default_prior_denoises_heldout_photo():
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    prior = load_prior()
    assert prior.name == "default" and prior.kind == "vidrestore"
    assert prior.alphas_cumprod.shape == (1000,)
    assert prior.multiple >= 2 and prior.image_size
    # astronaut.png is in DEFAULT_HOLDOUT (never trained on).
    img = Image.fromarray(skimage_data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1)[None] / 255
    sigma = 25 / 255
    y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        d = prior.denoise_pixel(y, sigma).clamp(0, 1)

    def psnr(a):
        return float(-10 * torch.log10(((a - x) ** 2).mean()))

    assert psnr(d) >= psnr(y) + 3.0, (psnr(y), psnr(d))
    torch.testing.assert_close(denoise_image(prior, y[0], sigma), d[0])


# ---------------------------------------------------------------------------------------------
# diffusers folders
# ---------------------------------------------------------------------------------------------


def _tiny_diffusers(folder: Path, prediction_type="v_prediction", layout="pipeline"):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8,
    )
    with torch.no_grad():  # make every layer matter (some are zero-initialised)
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    unet.eval()
    sched = diffusers.DDPMScheduler(prediction_type=prediction_type, beta_schedule="linear")
    if layout == "pipeline":  # folder/unet + folder/scheduler
        unet.save_pretrained(folder / "unet")
        sched.save_pretrained(folder / "scheduler")
    else:  # folder/config.json + folder/scheduler/scheduler_config.json
        unet.save_pretrained(folder)
        sched.save_pretrained(folder / "scheduler")
    return unet, sched


@pytest.mark.parametrize("layout", ["pipeline", "unet_subfolder"])
def test_diffusers_v_prediction(tmp_path, layout):
    unet, sched = _tiny_diffusers(tmp_path / "pipe", layout=layout)
    paths = [tmp_path / "pipe"] + ([tmp_path / "pipe" / "unet"] if layout == "pipeline" else [])
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 600])
    with torch.no_grad():
        v = unet(x, t).sample
    abar = sched.alphas_cumprod[t].double().reshape(-1, 1, 1, 1)
    eps_ref = (abar.sqrt() * v + (1 - abar).sqrt() * x).float()
    x0_ref = (abar.sqrt() * x - (1 - abar).sqrt() * v).float()
    for path in paths:  # the pipeline folder itself, and its unet/ with the sibling scheduler/
        prior = load_prior(path)
        assert prior.kind == "diffusers" and prior.prediction == "v"
        assert prior.multiple == 2 and prior.image_size == 16
        torch.testing.assert_close(prior.alphas_cumprod.float(), sched.alphas_cumprod.float())
        with torch.no_grad():
            torch.testing.assert_close(prior.net(x, t), v)
            eps, x0 = prior.eps_and_x0(x, t)
        torch.testing.assert_close(eps, eps_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(x0, x0_ref, atol=1e-5, rtol=1e-5)


def test_diffusers_defaults_and_errors(tmp_path, monkeypatch):
    unet, _ = _tiny_diffusers(tmp_path / "m", layout="unet_subfolder")
    import shutil

    shutil.rmtree(tmp_path / "m" / "scheduler")
    prior = load_prior(tmp_path / "m")  # no scheduler config: epsilon, linear 1e-4..0.02, 1000
    assert prior.prediction == "eps"
    torch.testing.assert_close(prior.alphas_cumprod, alphas_cumprod(linear_betas(1000)))
    assert load_prior(tmp_path / "m", prediction="x0").prediction == "x0"

    monkeypatch.setitem(sys.modules, "diffusers", None)  # import fails
    with pytest.raises(UserError, match=r"pip install vidrestore\[diffusers\]"):
        load_prior(tmp_path / "m")
    monkeypatch.undo()

    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["_class_name"] = "UNet2DConditionModel"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="UNet2DModel"):
        load_prior(tmp_path / "m")
    cfg["_class_name"] = "UNet2DModel"
    cfg["block_out_channels"] = [8, 32]  # weights no longer match the config
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        load_prior(tmp_path / "m")
    _one_line(e)


# ---------------------------------------------------------------------------------------------
# Conveniences
# ---------------------------------------------------------------------------------------------


def test_sample_grid_and_denoise_image_shapes(ckpt_a):
    prior = load_prior(ckpt_a, **FLAGS_A)
    grid = sample_prior_grid(prior, n=3, size=16, steps=3, seed=1)
    assert grid.shape == (3, 38, 38) and float(grid.min()) >= 0 and float(grid.max()) <= 1
    torch.testing.assert_close(grid, sample_prior_grid(prior, n=3, size=16, steps=3, seed=1))
    with pytest.raises(UserError, match="multiple of 2"):
        sample_prior_grid(prior, n=1, size=15)
    assert make_grid(torch.zeros(5, 3, 4, 4), nrow=5, padding=1).shape == (3, 6, 26)
    y = torch.rand(3, 15, 17)
    assert denoise_image(prior, y, 0.1).shape == (3, 15, 17)
    video = torch.rand(2, 3, 2, 8, 10)
    out = denoise_image(prior, video, torch.tensor([0.05, 0.1]))
    assert out.shape == video.shape
    torch.testing.assert_close(out[1, :, 0], denoise_image(prior, video[1, :, 0], 0.1))


def test_bundled_v2_prior_loads_by_name_and_denoises_better_than_noise():
    """load_prior("v2"): the second bundled prior, same architecture as the default, other weights."""
    v1, v2 = load_prior("default"), load_prior("v2")
    assert v2.name == "v2" and v2.config["kwargs"] == v1.config["kwargs"] and v2.config["trained_steps"] == 23500
    assert not torch.equal(next(v1.net.parameters()), next(v2.net.parameters()))
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = torch.stack([xx, yy, 0.5 * (xx + yy)])  # smooth ramps
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    out = denoise_image(v2, noisy, 0.1)
    err = lambda a: float((a - clean).pow(2).mean())  # noqa: E731
    assert err(out) < 0.2 * err(noisy)
