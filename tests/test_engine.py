"""Precision defaults and the OpenVINO engine of the prior (vidrestore.priors.engine)."""

import numpy as np
import pytest
import torch

from vidrestore.checkpoint import save_pretrained
from vidrestore.errors import UserError
from vidrestore.nets import ADMUNet
from vidrestore.ops import parse
from vidrestore.priors import load_prior
from vidrestore.priors import engine as eng
from vidrestore.workflows.methods import prior_dtype
from vidrestore.workflows.scale import restore_video

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(image_size=16, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1, attention_resolutions=(2,),
            channel_mult=(1, 2), num_head_channels=16, use_scale_shift_norm=True)


@pytest.fixture
def tiny_prior_dir(tmp_path):
    torch.manual_seed(0)
    net = ADMUNet(**TINY)
    with torch.no_grad():  # non-trivial output weights (ADM zero-initialises the last conv)
        for p in net.out.parameters():
            p.normal_(0, 0.05)
    return save_pretrained(net, tmp_path / "tiny", card={"prediction": "eps", "schedule": "linear", "num_timesteps": 1000})


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDRESTORE_PRECISION", raising=False)
    monkeypatch.delenv("VIDRESTORE_ENGINE", raising=False)
    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path / "cache"))


def test_auto_precision_follows_the_cpu_flags_env_and_device(no_env, monkeypatch):
    monkeypatch.setattr(eng, "cpu_has_bf16", lambda: True)
    assert eng.resolve_precision(None) == "bf16" and eng.resolve_precision("auto", "cpu") == "bf16"
    assert eng.resolve_precision(None, "cuda") == "fp32"
    assert prior_dtype(None) == torch.bfloat16
    assert prior_dtype(None, needs_grad=True) == torch.float32  # DPS keeps float32 by default
    assert prior_dtype("bf16", needs_grad=True) == torch.bfloat16  # ... unless asked
    monkeypatch.setattr(eng, "cpu_has_bf16", lambda: False)
    assert eng.resolve_precision(None) == "fp32" and prior_dtype("auto") == torch.float32
    monkeypatch.setenv("VIDRESTORE_PRECISION", "bf16")
    assert eng.resolve_precision(None) == "bf16" and eng.resolve_precision("fp32") == "fp32"
    with pytest.raises(UserError, match="precision"):
        prior_dtype("int8")


def test_cpu_flag_reader_matches_proc_cpuinfo():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    flags = next(ln for ln in text.splitlines() if ln.startswith("flags")).split()
    assert eng.cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_auto_engine_and_one_line_errors(no_env, monkeypatch):
    monkeypatch.setattr(eng, "openvino_available", lambda: True)
    assert eng.resolve_engine(None) == "openvino" and eng.resolve_engine("auto", "cuda") == "eager"
    monkeypatch.setenv("VIDRESTORE_ENGINE", "eager")
    assert eng.resolve_engine(None) == "eager"
    with pytest.raises(UserError, match="CPU only"):
        eng.resolve_engine("openvino", "cuda")
    monkeypatch.setattr(eng, "openvino_available", lambda: False)
    monkeypatch.delenv("VIDRESTORE_ENGINE")
    assert eng.resolve_engine(None) == "eager"
    with pytest.raises(UserError, match=r"pip install 'vidrestore\[fast\]'"):
        eng.resolve_engine("openvino")
    with pytest.raises(UserError, match="engine must be one of"):
        eng.resolve_engine("tensorrt")


def _need_openvino():
    """Skip without OpenVINO; import it as the library does (telemetry off). ``pytest.importorskip``
    would import it first with its telemetry on, whose forked sender can keep pytest from exiting."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    eng.import_openvino()


def test_openvino_prior_matches_eager_at_any_size_and_is_cached(no_env, tiny_prior_dir, tmp_path, monkeypatch):
    _need_openvino()  # in the dev extra; CI installs it
    prior = load_prior(tiny_prior_dir)
    g = torch.Generator().manual_seed(1)
    ref = {}
    for shape in [(2, 3, 16, 16), (3, 3, 24, 40)]:  # one conversion, dynamic batch and frame size
        x = torch.randn(shape, generator=g)
        t = torch.randint(0, 1000, (shape[0],), generator=g)
        with torch.no_grad():
            ref[shape] = (x, t, prior.eps(x, t))
    prior.set_engine("openvino", "fp32")
    assert prior.engine_name == "openvino (fp32)"
    folders = list((tmp_path / "cache" / "openvino").iterdir())
    assert len(folders) == 1 and (folders[0] / "model.xml").is_file()
    for x, t, want in ref.values():
        with torch.no_grad():
            got = prior.eps(x, t)
        assert got.dtype == torch.float32 and got.shape == want.shape
        rel = float((got - want).norm() / want.norm())
        assert rel < 1e-4, rel
    # Gradients with respect to the input need PyTorch: such calls run the eager network.
    x, t, want = ref[(2, 3, 16, 16)]
    xg = x.clone().requires_grad_(True)
    out = prior.eps(xg, t)
    out.sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0
    # A second prior with the same weights reads the cached model instead of converting again.
    def no_convert(*a, **k):
        raise AssertionError("converted twice")
    monkeypatch.setattr(eng.OpenVINONet, "_convert", staticmethod(no_convert))
    again = load_prior(tiny_prior_dir).set_engine("openvino", "bf16")
    with torch.no_grad():
        got = again.eps(x, t)
    rel = float((got - want).norm() / want.norm())
    assert 1e-6 < rel < 3e-2, rel  # bf16 arithmetic: close, not identical


def test_restore_svi_with_openvino_is_close_to_eager_and_deterministic(no_env, tiny_prior_dir):
    _need_openvino()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 4, 16, 16, generator=g)
    op = parse("sr:2", num_frames=4)
    y = op.A(x)
    common = {"prior": str(tiny_prior_dir), "steps": 4, "precision": "fp32"}
    eager = restore_video(y, op, method="svi", options={**common, "engine": "eager"}, quiet=True)
    ov1 = restore_video(y, op, method="svi", options={**common, "engine": "openvino"}, quiet=True)
    ov2 = restore_video(y, op, method="svi", options={**common, "engine": "openvino"}, quiet=True)
    assert torch.equal(ov1, ov2)
    assert float((ov1 - eager).abs().max()) < 1e-3
    assert float((ov1 - x).abs().mean()) < 0.5  # a real restoration, not noise


def test_methods_that_need_the_pytorch_network_refuse_openvino(no_env, tiny_prior_dir):
    op = parse("sr:2", num_frames=2)
    y = op.A(torch.rand(1, 3, 2, 16, 16))
    for method in ("dps", "diffir2vr"):
        with pytest.raises(UserError, match="--engine eager"):
            restore_video(y, op, method=method, options={"prior": str(tiny_prior_dir), "steps": 1, "engine": "openvino"}, quiet=True)


def test_openvino_is_imported_with_its_telemetry_off():
    """Offline, OpenVINO's conversion telemetry forks a process that can keep Python from exiting;
    ``import_openvino`` makes OpenVINO take its no-op stub (checked in a fresh interpreter)."""
    import subprocess
    import sys

    _need_openvino()
    for first in ("", "import openvino; "):  # also when the caller imported OpenVINO first
        code = (first + "from vidrestore.priors.engine import import_openvino; import_openvino(); "
                "import openvino.tools.ovc.telemetry_utils as tu, openvino.tools.ovc.convert_impl as ci; "
                "print(tu.tm.__name__, ci.tm.__name__)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert all(name.endswith("telemetry_stub") for name in out.stdout.split()), (first, out.stdout)
