"""Official PVDNet checkpoints: our loader and forward pass against the official code's numbers.

``tests/data/pvdnet_official.safetensors`` was written by
``scripts/make_pvdnet_official_fixture.py`` from the official code (github.com/codeslake/PVDNet,
run on the CPU): its ``DeblurNet`` (normal and large) filled with the deterministic weights of
:func:`recipe_weights` and run recurrently on a seeded 3-frame 68x76 clip. Here the same recipe
rebuilds the state dicts under the official parameter names, they go through real
``.pytorch`` files (``torch.save`` / ``torch.load(weights_only=True)``) into our loader, and
our forward pass must reproduce the official flow and results.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from vidrestore.errors import UserError
from vidrestore.nets.pvdnet_official import official_pvdnet_config, official_variant, split_official_state_dict
from vidrestore.workflows.deblur import load_pvdnet
from vidrestore.workflows.pvdnet_official import load_bimnet, load_official_pvdnet

FIXTURE = Path(__file__).parent / "data" / "pvdnet_official.safetensors"
RTOL = 1e-4


@pytest.fixture(autouse=True)
def _two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


def _fixture_script():
    """``scripts/make_pvdnet_official_fixture.py`` as a module (its weight recipe; the official
    code it drives is only imported when the script runs)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_pvdnet_official_fixture.py"
    spec = importlib.util.spec_from_file_location("make_pvdnet_official_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The fixture's weight recipe, shared with the script that made it (checked by a fingerprint).
recipe_weights = _fixture_script().recipe_weights


@pytest.fixture(scope="module")
def ref():
    from safetensors import safe_open

    with safe_open(str(FIXTURE), framework="pt") as f:
        data = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["fixture"])
    data["frames"] = data["frames"].float() / 255.0
    return data, meta


@pytest.fixture(scope="module")
def weights(ref):
    _, meta = ref
    return {v: recipe_weights(meta[f"{v}_shapes"], meta["weight_seed"]) for v in ("normal", "large")}


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def _run(net, frames01):
    """Our recurrence with the official feedback (previous *unclamped* output), results in
    [-1, 1] and BIMNet flows, to compare with the fixture."""
    n = frames01.shape[0]
    x = frames01[:, None]  # (T, 1, 3, H, W)
    outs, flows = [], []
    state = x[0]
    with torch.no_grad():
        for t in range(n):
            prev, cur, nxt = x[max(t - 1, 0)], x[t], x[min(t + 1, n - 1)]
            flow = net.flow(cur, prev)
            out = net.step(prev, cur, nxt, state, flow=flow)
            state = out
            outs.append(out[0] * 2 - 1)
            flows.append(flow[0])
    return torch.stack(outs), torch.stack(flows)


def _save(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_recipe_matches_the_fixture_script(ref, weights):
    _, meta = ref
    for v in ("normal", "large"):
        w = weights[v]
        assert sum(t.numel() for t in w.values()) == meta[f"{v}_params"]
        assert math.isclose(sum(float(w[k].double().sum()) for k in sorted(w)), meta[f"{v}_weight_sum"], rel_tol=1e-9)
        assert math.isclose(sum(float(w[k].double().abs().sum()) for k in sorted(w)), meta[f"{v}_weight_abs_sum"], rel_tol=1e-9)
    # The released model sizes (BIMNet + CNN), as counted by the paper's code.
    assert (meta["normal_params"], meta["large_params"]) == (10_514_548, 23_361_780)


def _params(net):
    return {k: v for k, v in net.state_dict().items()}


def _same_params(a, b, prefix=""):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        if k.startswith(prefix):
            assert torch.equal(pa[k], pb[k]), k


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, weights):
    """The two variants saved as release-style files (DataParallel's ``module.`` prefix) and
    loaded with :func:`load_pvdnet`; the large one also without the prefix."""
    tmp = tmp_path_factory.mktemp("official")
    nets = {}
    for v in ("normal", "large"):
        path = _save(tmp, f"PVDNet_{v}.pytorch", {"module." + k: t for k, t in weights[v].items()})
        nets[v] = load_pvdnet(str(path))
    nets["large_plain"] = load_pvdnet(str(_save(tmp, "plain.pytorch", weights["large"])))
    return nets


@pytest.fixture(scope="module")
def runs(ref, loaded):
    data, _ = ref
    return {v: _run(loaded[v], data["frames"]) for v in ("normal", "large")}


@pytest.mark.parametrize("variant", ["normal", "large"])
def test_official_checkpoint_file_matches_official_forward(ref, loaded, runs, variant):
    data, meta = ref
    net = loaded[variant]
    assert net.pretrained_config["variant"] == variant and net.pretrained_config["flow"] == "bimnet"
    assert sum(p.numel() for p in net.parameters()) == meta[f"{variant}_params"]
    out, flows = runs[variant]
    # BIMNet flow (full resolution, zero-padded outside the mod-32 crop), then the results.
    assert _rel(flows, data["flows"]) < RTOL
    assert torch.equal(flows[:, :, 64:], torch.zeros_like(flows[:, :, 64:]))
    assert 5 < float(data["flows"].abs().max()) < 50  # flows of several pixels: the pixel volume is exercised
    err = _rel(out, data[f"{variant}_result"])
    assert err < RTOL, err
    # The frames differ (the recurrence and the frame window matter), so the check is sharp.
    assert _rel(data[f"{variant}_result"][1], data[f"{variant}_result"][0]) > 1e-2


def test_module_prefix_is_optional(loaded):
    _same_params(loaded["large"], loaded["large_plain"])


def test_pixel_volume_of_the_loaded_model_matches_official(ref, runs):
    from vidrestore.nets.pvdnet import pixel_volume

    data, _ = ref
    out, flows = runs["normal"]
    f = data["frames"]
    # Frame 1: previous output = our result of frame 0 (in [-1, 1]), fill = frame 1.
    pv = pixel_volume(out[0:1], flows[1:2], f[1:2] * 2 - 1)[0, :, : data["normal_pv1_top"].shape[1]]
    torch.testing.assert_close(pv, data["normal_pv1_top"].float(), atol=2e-3, rtol=0)  # stored as float16


def test_variant_detected_from_shapes(ref):
    _, meta = ref
    for v in ("normal", "large"):
        shapes = {k: torch.empty(s, device="meta") for k, s in meta[f"{v}_shapes"].items()}
        bim, cnn = split_official_state_dict(shapes)
        assert bim is not None and cnn is not None
        cfg = official_pvdnet_config(cnn)
        assert official_variant(cfg) == v
        assert cfg["num_blocks"] == {"normal": 12, "large": 24}[v] and cfg["low_ch"] == {"normal": 128, "large": 192}[v]
    # Any other depth is built from the shapes and called custom.
    shapes = {k: torch.empty(s, device="meta") for k, s in meta["normal_shapes"].items() if not k.startswith("PVDNet.RBs.11.")}
    assert official_variant(official_pvdnet_config(split_official_state_dict(shapes)[1])) == "custom"


def test_bimnet_file_alone(tmp_path, ref, weights, loaded):
    data, _ = ref
    w = weights["normal"]
    bim = _save(tmp_path, "BIMNet.pytorch", {k[len("BIMNet."):]: v for k, v in w.items() if k.startswith("BIMNet.")})
    cnn = _save(tmp_path, "cnn.pytorch", {"module." + k: v for k, v in w.items() if k.startswith("PVDNet.")})
    # The flow network alone reproduces the official flow.
    flow_net = load_bimnet(bim)
    f = data["frames"]
    with torch.no_grad():
        flow = flow_net.estimate(f[1:2], f[0:1])
    assert _rel(flow[0], data["flows"][1]) < RTOL
    # A CNN-only file needs --bimnet; with it the model is the official one (checked above).
    with pytest.raises(UserError, match="--bimnet"):
        load_pvdnet(str(cnn))
    _same_params(load_pvdnet(str(cnn), bimnet=str(bim)), loaded["normal"])
    with pytest.raises(UserError, match="not found"):
        load_pvdnet(str(cnn), bimnet=str(tmp_path / "nope.pytorch"))
    with pytest.raises(UserError, match="cnn.pytorch holds no BIMNet"):
        load_pvdnet(str(cnn), bimnet=str(cnn))
    # --bimnet replaces the BIMNet of a whole-model file and of a vidrestore folder.
    other = {k: (torch.zeros_like(v) if k.startswith("BIMNet.") else v) for k, v in w.items()}
    _same_params(load_official_pvdnet(_save(tmp_path, "zero_bim.pytorch", other), bimnet=bim), loaded["normal"])
    from vidrestore.checkpoint import save_pretrained
    from vidrestore.nets import PVDNetDeblur

    save_pretrained(PVDNetDeblur("small", "small"), tmp_path / "ours", card={"flow": "dis"})
    ours = load_pvdnet(str(tmp_path / "ours"), bimnet=str(bim))
    assert ours.pretrained_config["flow"] == "bimnet" and ours.config["bimnet"] == loaded["normal"].bimnet.config
    _same_params(ours.bimnet, loaded["normal"].bimnet)
    save_pretrained(ours, tmp_path / "ours2", card={"flow": "bimnet"})  # the config follows the swap
    _same_params(load_pvdnet(str(tmp_path / "ours2")).bimnet, loaded["normal"].bimnet)


def test_loaded_model_saves_as_a_vidrestore_folder(tmp_path, loaded):
    from vidrestore.checkpoint import save_pretrained

    save_pretrained(loaded["large"], tmp_path / "large", card={"flow": "bimnet"})
    again = load_pvdnet(str(tmp_path / "large"))
    assert again.config == loaded["large"].config
    _same_params(again, loaded["large"])


def _bad_files(tmp_path):
    torch.save({"conv.weight": torch.zeros(2), "other.bias": torch.zeros(2)}, tmp_path / "not_pvdnet.pytorch")
    torch.save([torch.zeros(2)], tmp_path / "a_list.pytorch")
    (tmp_path / "garbage.pytorch").write_bytes(b"\x00\x01 not a pickle at all")
    import pickle

    (tmp_path / "object.pth").write_bytes(pickle.dumps({"x": Path("a")}))  # an object: refused by weights_only
    torch.save({"BIMNet.moduleFeatures.moduleOne.0.weight": torch.zeros(3)}, tmp_path / "bim_bad.pytorch")
    return {
        "not_pvdnet.pytorch": "not an official PVDNet",
        "a_list.pytorch": "not a PyTorch state dict",
        "garbage.pytorch": "cannot read",
        "object.pth": "cannot read",
        "bim_bad.pytorch": "no PVDNet",
        "missing.pytorch": "not found",
    }


def test_files_that_are_not_pvdnet_state_dicts_are_user_errors(tmp_path, weights):
    for name, msg in _bad_files(tmp_path).items():
        with pytest.raises(UserError, match=msg) as exc:
            load_pvdnet(str(tmp_path / name))
        assert "\n" not in str(exc.value)
    # A shape that does not fit names the parameter.
    w = dict(weights["normal"])
    w["PVDNet.d0.weight"] = torch.zeros(64, 95, 5, 5)
    with pytest.raises(UserError, match="d0.weight"):
        load_pvdnet(str(_save(tmp_path, "bad_shape.pytorch", w)))
    w = {k: v for k, v in weights["normal"].items() if k != "BIMNet.moduleFeatures.moduleOne.0.bias"}
    with pytest.raises(UserError, match="BIMNet does not match"):
        load_pvdnet(str(_save(tmp_path, "missing_key.pytorch", w)))


def _cli(*args):
    from click.testing import CliRunner

    from vidrestore.cli.main import cli

    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def test_cli_restore_with_official_weights(tmp_path, ref, weights):
    from vidrestore.io import read_video, write_video

    data, _ = ref
    path = _save(tmp_path, "PVDNet_DVD.pytorch", {"module." + k: v for k, v in weights["normal"].items()})
    clip = data["frames"].permute(1, 0, 2, 3)[None]  # (1, 3, T, H, W)
    write_video(tmp_path / "blurry.npz", clip, 24.0)
    code, out = _cli("restore", str(tmp_path / "blurry.npz"), "-o", str(tmp_path / "sharp.npz"), "-m", "pvdnet", "--weights", str(path), "--no-guard", "-q")
    assert code == 0, out
    assert "pvdnet" in out and "flow bimnet" in out
    x, _ = read_video(tmp_path / "sharp.npz")
    expected = ((data["normal_result"] + 1) / 2).clamp(0, 1).permute(1, 0, 2, 3)[None]
    torch.testing.assert_close(x, expected, atol=1e-4, rtol=0)
    # --bimnet with a CNN-only file.
    w = weights["normal"]
    bim = _save(tmp_path, "BIMNet.pytorch", {k[len("BIMNet."):]: v for k, v in w.items() if k.startswith("BIMNet.")})
    cnn = _save(tmp_path, "cnn.pytorch", {k: v for k, v in w.items() if k.startswith("PVDNet.")})
    code, out = _cli("restore", str(tmp_path / "blurry.npz"), "-o", str(tmp_path / "s2.npz"), "-m", "pvdnet", "--weights", str(cnn), "--bimnet", str(bim), "--no-guard", "-q")
    assert code == 0, out
    torch.testing.assert_close(read_video(tmp_path / "s2.npz")[0], expected, atol=1e-4, rtol=0)


def test_cli_bad_weight_files_exit_2_without_output(tmp_path):
    from vidrestore.io import write_video

    write_video(tmp_path / "blurry.npz", torch.rand(1, 3, 2, 64, 64), 24.0)
    for name, msg in _bad_files(tmp_path).items():
        code, out = _cli("restore", str(tmp_path / "blurry.npz"), "-o", str(tmp_path / "o.npz"), "-m", "pvdnet", "--weights", str(tmp_path / name), "-q")
        assert code == 2, out
        assert len(out.strip().splitlines()) == 1 and out.startswith("vidrestore: error:") and msg in out, out
        assert not (tmp_path / "o.npz").exists()
    code, out = _cli("restore", str(tmp_path / "blurry.npz"), "-o", str(tmp_path / "o.npz"), "-m", "cg", "--op", "id", "--bimnet", "x.pytorch", "-q")
    assert code == 2 and "--bimnet" in out
