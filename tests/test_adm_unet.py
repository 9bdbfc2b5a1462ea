"""ADMUNet against reference outputs of openai/guided-diffusion's UNetModel.

``tests/data/adm_ref`` holds state dicts (random weights, stored as float16 — exactly
representable, so the float32 upstream computation is reproduced), inputs and outputs made
by running upstream ``guided_diffusion.unet.UNetModel`` with the kwargs in
``reference.json``, plus the key/shape listing of the two full-size presets as built by
upstream ``script_util.create_model``. See ``tests/data/adm_ref/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidrestore.nets import ADM_PRESETS, NETS, ADMUNet, adm_from_flags, get_net
from vidrestore.nets.adm_unet import AttentionBlock, QKVAttention

REF = Path(__file__).parent / "data" / "adm_ref"
META = json.loads((REF / "reference.json").read_text())


@pytest.mark.parametrize("name", sorted(META["configs"]))
def test_matches_upstream(name):
    kwargs = META["configs"][name]
    ref = torch.load(REF / f"{name}.pt", weights_only=True)
    net = ADMUNet(**kwargs).eval()
    net.load_state_dict(ref["state_dict"], strict=True)
    with torch.no_grad():
        out = net(ref["x"], ref["t"], ref.get("y"))
    assert out.shape == ref["out"].shape
    torch.testing.assert_close(out, ref["out"], atol=1e-5, rtol=1e-5)


def test_config_roundtrip_builds_same_keys():
    kwargs = META["configs"]["a_ss_updown"]
    net = ADMUNet(**kwargs)
    again = ADMUNet(**json.loads(json.dumps(net.config)))
    assert net.config == again.config
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}


@pytest.mark.parametrize("preset", sorted(ADM_PRESETS))
def test_presets_match_upstream_keys(preset):
    with torch.device("meta"):
        net = adm_from_flags(**ADM_PRESETS[preset])
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == META["preset_shapes"][preset]


def test_preset_flag_values():
    uncond = ADM_PRESETS["adm-imagenet256-uncond"]
    assert uncond["num_channels"] == 256 and uncond["attention_resolutions"] == "32,16,8"
    assert uncond["num_head_channels"] == 64 and uncond["learn_sigma"] and not uncond["class_cond"]
    ffhq = ADM_PRESETS["adm-ffhq256"]
    assert ffhq["num_channels"] == 128 and ffhq["num_res_blocks"] == 1 and ffhq["num_heads"] == 4
    assert ffhq["attention_resolutions"] == "16" and ffhq["resblock_updown"]


def test_attention_hook_is_used_and_wrappable():
    kwargs = META["configs"]["a_ss_updown"]
    ref = torch.load(REF / "a_ss_updown.pt", weights_only=True)
    net = ADMUNet(**kwargs).eval()
    net.load_state_dict(ref["state_dict"])
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, q, k, v):
            seen.append(tuple(q.shape))
            return self.inner(q, k, v)

    blocks = net.attention_blocks()
    assert blocks and all(isinstance(b, AttentionBlock) for b in blocks)
    for b in blocks:
        b.attention = Spy(b.attention)
    with torch.no_grad():
        out = net(ref["x"], ref["t"])
    torch.testing.assert_close(out, ref["out"], atol=1e-5, rtol=1e-5)
    assert len(seen) == len(blocks)
    # (N, heads, L, d): 32 channels / 16 per head; L = 16*16 at full resolution.
    assert seen[0] == (2, 2, 256, 16)


def test_qkv_attention_matches_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=g) for _ in range(3))
    k, v = k[:, :, :6], v[:, :, :6]
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(QKVAttention()(q, k, v), expected, atol=1e-5, rtol=1e-5)


def test_flags_and_errors():
    net = adm_from_flags(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2",
                         attention_resolutions="16", learn_sigma=True, diffusion_steps=1000)
    assert net.config["attention_resolutions"] == [2]
    assert net.config["out_channels"] == 6 and net.config["channel_mult"] == [1, 2]
    with pytest.raises(TypeError):
        adm_from_flags(image_size=64, bogus_flag=1)
    with pytest.raises(ValueError):
        adm_from_flags(image_size=48)
    with pytest.raises(ValueError, match="adm_unet"):
        get_net("nope")
    assert NETS["adm_unet"] is ADMUNet
    # y given to an unconditional model
    with pytest.raises(ValueError):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1), torch.zeros(1, dtype=torch.long))


def test_backward_and_checkpointing_agree():
    kwargs = dict(META["configs"]["a_ss_updown"])
    torch.manual_seed(0)
    net = ADMUNet(**kwargs)
    kwargs["use_checkpoint"] = True
    net_ck = ADMUNet(**kwargs)
    net_ck.load_state_dict(net.state_dict())
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 500])
    grads = []
    for m in (net, net_ck):
        m.train()
        m.zero_grad()
        m(x, t).square().mean().backward()
        grads.append(m.input_blocks[0][0].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    # scalar timestep broadcasts
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x, torch.tensor(7)), net(x, torch.tensor([7, 7])))
