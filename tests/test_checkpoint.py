"""save_pretrained / from_pretrained round trips and error messages."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vidrestore.checkpoint import from_pretrained, load_config, save_pretrained
from vidrestore.errors import UserError
from vidrestore.nets import ADMUNet

TINY = dict(image_size=16, model_channels=32, out_channels=3, num_res_blocks=1, attention_resolutions=(2,),
            channel_mult=(1, 2), num_head_channels=32, use_scale_shift_norm=True)


def _net(**over):
    torch.manual_seed(0)
    net = ADMUNet(**{**TINY, **over}).eval()
    with torch.no_grad():  # non-zero everywhere so the round trip is meaningful
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def _io():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 16, 16, generator=g), torch.tensor([10, 900])


def test_round_trip_fp32_exact(tmp_path):
    net = _net()
    out = save_pretrained(net, tmp_path / "m", card={"prediction": "eps", "schedule": "linear"})
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["class"] == "adm_unet" and cfg["format_version"] == 1 and cfg["prediction"] == "eps"
    assert cfg["kwargs"] == net.config
    loaded = from_pretrained(out)
    assert loaded.pretrained_config["schedule"] == "linear"
    x, t = _io()
    with torch.no_grad():
        assert torch.equal(net(x, t), loaded(x, t))
    # saving again over an existing folder works, leaves no temp folders
    save_pretrained(net, out, card="# card\n")
    assert (out / "README.md").read_text() == "# card\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_round_trip_fp16_close(tmp_path):
    net = _net()
    save_pretrained(net, tmp_path / "m", dtype=torch.float16)
    assert all(v.dtype == torch.float16 for v in load_file(str(tmp_path / "m" / "model.safetensors")).values())
    loaded = from_pretrained(tmp_path / "m")
    assert next(loaded.parameters()).dtype == torch.float32
    x, t = _io()
    with torch.no_grad():
        ref, got = net(x, t), loaded(x, t)
    assert (ref - got).abs().max() < 1e-2 * ref.abs().max()
    assert next(from_pretrained(tmp_path / "m", dtype=None).parameters()).dtype == torch.float16


def test_single_file(tmp_path):
    net = _net()
    save_pretrained(net, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m" / "model.safetensors")
    assert load_config(tmp_path / "m" / "model.safetensors")["class"] == "adm_unet"
    x, t = _io()
    with torch.no_grad():
        assert torch.equal(net(x, t), loaded(x, t))


def test_errors(tmp_path):
    net = _net()
    d = save_pretrained(net, tmp_path / "m")
    with pytest.raises(UserError, match="not found"):
        from_pretrained(tmp_path / "nothing")
    # missing / unexpected keys
    state = load_file(str(d / "model.safetensors"))
    k = sorted(state)[0]
    state["extra.weight"] = state.pop(k)
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(UserError, match="missing keys: .*unexpected keys: extra.weight") as err:
        from_pretrained(d)
    assert "\n" not in str(err.value)
    # shape mismatch
    d2 = save_pretrained(_net(model_channels=64), tmp_path / "m2")
    cfg = json.loads((d2 / "config.json").read_text())
    cfg["kwargs"]["model_channels"] = 32
    (d2 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="shape mismatch"):
        from_pretrained(d2)
    # bad JSON, missing files, unknown class, bad kwargs
    (d2 / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        from_pretrained(d2)
    (d2 / "config.json").write_text(json.dumps({"class": "nope", "format_version": 1, "kwargs": {}}))
    with pytest.raises(UserError, match="adm_unet"):
        from_pretrained(d2)
    (d2 / "config.json").write_text(json.dumps({"class": "adm_unet", "format_version": 1, "kwargs": {"bogus": 1}}))
    with pytest.raises(UserError, match="cannot build"):
        from_pretrained(d2)
    (d2 / "config.json").unlink()
    with pytest.raises(UserError, match="missing config.json"):
        from_pretrained(d2)
    save_pretrained(net, tmp_path / "m3")
    (tmp_path / "m3" / "model.safetensors").unlink()
    with pytest.raises(UserError, match="missing model.safetensors"):
        from_pretrained(tmp_path / "m3")
    with pytest.raises(ValueError, match="reserved"):
        save_pretrained(net, tmp_path / "m4", card={"class": "x"})
