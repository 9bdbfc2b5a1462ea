"""CLI: help for every subcommand, degrade -> restore -> eval round trip, user errors."""

import json

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.io import read_video, write_video
from vidrestore.ops import parse

SUBCOMMANDS = ["degrade", "restore", "eval", "ops", "demo", "info", "train", "sample-prior"]


def run(*args):
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.output


@pytest.fixture
def clip(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = torch.rand((1, 3, 8, 8), generator=g)
    frames = [torch.roll(torch.nn.functional.interpolate(base, size=(32, 32), mode="bicubic"), i, dims=3) for i in range(8)]
    x = torch.stack(frames, 2).clamp(0, 1)
    p = tmp_path / "clip.npz"
    write_video(p, x, 24.0)
    return p, x


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub):
    code, out = run(sub, "--help")
    assert code == 0 and "Usage" in out


def test_train_prior_help():
    code, out = run("train", "prior", "--help")
    assert code == 0 and "--resume" in out


def test_ops_lists_grammar():
    code, out = run("ops")
    assert code == 0
    for token in ["tblur:uniform:K", "blur:gauss:SIGMA", "sr:F", "inpaint:R", "fdrop:K", "id"]:
        assert token in out


def test_degrade_restore_eval_roundtrip(tmp_path, clip):
    src, x = clip
    y_path = tmp_path / "y.npz"
    code, out = run("degrade", str(src), "-o", str(y_path), "--op", "tblur:uniform:3:circular,sr:2", "--seed", "5")
    assert code == 0, out
    meta = json.loads((tmp_path / "y.npz.json").read_text())
    assert meta["op"] == "tblur:uniform:3:circular,sr:2" and meta["seed"] == 5
    assert meta["x_shape"] == [1, 3, 8, 32, 32] and meta["y_shape"] == [1, 3, 8, 16, 16]
    assert meta["lossless"] is True and meta["fps"] == 24.0
    # The measurement round-trips without loss: it equals the operator applied again.
    y, fps = read_video(y_path)
    expect = parse(meta["op"], seed=meta["seed"]).A(x.double()).float()
    assert torch.equal(y, expect) and fps == 24.0

    out_path = tmp_path / "r.npz"
    code, out = run("restore", str(y_path), "-o", str(out_path), "-m", "cg", "-q")
    assert code == 0, out
    code, table = run("eval", str(out_path), str(src), "--json", str(tmp_path / "m.json"))
    assert code == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert {"psnr", "ssim", "warp_error", "per_frame"} <= set(m)
    assert len(m["per_frame"]) == 8
    lifted = parse(meta["op"]).lift(y).clamp(0, 1)
    deg_psnr = float(-10 * torch.log10(((lifted - x) ** 2).mean()))
    assert m["psnr"] > deg_psnr + 3
    assert "PSNR" in table


def test_noisy_degrade_is_seeded(tmp_path, clip):
    src, _ = clip
    for name in ("a", "b"):
        code, _ = run("degrade", str(src), "-o", str(tmp_path / f"{name}.npz"), "--op", "id", "--sigma-y", "0.05", "--seed", "1")
        assert code == 0
    a, _ = read_video(tmp_path / "a.npz")
    b, _ = read_video(tmp_path / "b.npz")
    assert torch.equal(a, b)


def _nan_clip(tmp_path):
    p = tmp_path / "nan.npz"
    arr = np.zeros((3, 8, 16, 16), np.float32)
    arr[0, 0, 0, 0] = np.nan
    np.savez(p, video=arr)
    return p


@pytest.mark.parametrize(
    "args,needle",
    [
        (["degrade", "{missing}", "--op", "id"], "missing.mp4"),
        (["degrade", "{src}", "--op", "tblr:uniform:3"], "did you mean 'tblur'"),
        (["degrade", "{src}", "--op", "sr:3"], "does not divide"),
        (["degrade", "{src}", "--op", "tblur:uniform:9"], "at least 9 frames"),
        (["degrade", "{nan}", "--op", "id"], "NaN"),
        (["degrade", "{src}", "--op", "id", "--crop", "axb"], "--crop"),
        (["degrade", "{src}", "--op", "id", "--sigma-y", "-1"], "sigma"),
        (["restore", "{src}", "--op", "id", "-m", "magic"], "unknown method"),
        (["restore", "{src}"], "no operator"),
        (["restore", "{src}", "--op", "id", "-m", "svi", "--t-start", "late"], "--t-start"),
        (["eval", "{src}", "{missing}"], "missing.mp4"),
    ],
)
def test_user_errors_exit_2_without_output(tmp_path, clip, args, needle):
    src, _ = clip
    out = tmp_path / "out.npz"
    subs = {"src": str(src), "missing": str(tmp_path / "missing.mp4"), "nan": str(_nan_clip(tmp_path))}
    argv = [a.format(**subs) for a in args]
    if argv[0] in ("degrade", "restore"):
        argv += ["-o", str(out)]
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code == 2, r.output
    text = r.output or ""
    assert needle in text
    # One distinct error line (click may echo stderr into output as well).
    assert len({line for line in text.strip().splitlines() if line.startswith("vidrestore: error")}) <= 1
    assert "Traceback" not in text
    assert not out.exists() and not (tmp_path / "out.npz.json").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_sample_prior_grid_png(tmp_path):
    out = tmp_path / "grid.png"
    code, text = run("sample-prior", "-n", "2", "-o", str(out), "--size", "16", "--steps", "3", "--seed", "1")
    assert code == 0, text
    from PIL import Image

    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 1  # not blank
    out2 = tmp_path / "grid2.png"
    run("sample-prior", "-n", "2", "-o", str(out2), "--size", "16", "--steps", "3", "--seed", "1")
    assert np.array_equal(img, np.asarray(Image.open(out2)))  # seeded


def test_sample_prior_bad_prior(tmp_path):
    r = CliRunner().invoke(cli, ["sample-prior", "--prior", str(tmp_path / "nope"), "-o", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("method", ["svi", "dds", "dps"])
def test_restore_with_diffusion_methods(tmp_path, clip, method):
    src, x = clip
    y_path = tmp_path / "y.npz"
    assert run("degrade", str(src), "-o", str(y_path), "--op", "tblur:uniform:3:circular,sr:2")[0] == 0
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}.npz"
        code, text = run("restore", str(y_path), "-o", str(out), "-m", method, "--steps", "3", "-q")
        assert code == 0, text
        outs.append(read_video(out)[0])
    assert torch.equal(outs[0], outs[1])  # seeded
    r = outs[0]
    assert r.shape == x.shape and float(r.min()) >= 0 and float(r.max()) <= 1
    # Data consistency: the restored clip explains the measurement better than the lifted input does.
    op = parse("tblur:uniform:3:circular,sr:2")
    y, _ = read_video(y_path)
    if method != "dps":
        assert float((op.A(r) - y).abs().mean()) < float((op.A(op.lift(y).clamp(0, 1)) - y).abs().mean())


def test_restore_svi_in_windows(tmp_path, clip):
    src, x = clip
    y_path = tmp_path / "y.npz"
    assert run("degrade", str(src), "-o", str(y_path), "--op", "sr:2")[0] == 0
    out = tmp_path / "w.npz"
    code, text = run("restore", str(y_path), "-o", str(out), "-m", "svi", "--steps", "2", "--window", "4", "--overlap", "2", "-q")
    assert code == 0, text
    assert read_video(out)[0].shape == x.shape


_TRAIN_ARGS = {
    "lgcvd": ["train", "lgcvd"],
    "bimnet": ["train", "bimnet", "--data", "photos"],
    "pvdnet": ["train", "pvdnet", "--data", "photos", "--flow", "zero"],
}


@pytest.mark.parametrize("phase", list(_TRAIN_ARGS))
@pytest.mark.parametrize(
    "device,needle",
    [
        pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")),
        ("bogus", "unknown device"),
    ],
)
def test_train_bad_device_exits_2_with_one_line(tmp_path, phase, device, needle):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, [*_TRAIN_ARGS[phase], "--out", str(out), "--device", device])
    assert r.exit_code == 2, r.output
    text = r.output or ""
    errors = [line for line in text.strip().splitlines() if line.startswith("vidrestore: error")]
    assert len(set(errors)) == 1 and needle in errors[0], text
    assert "Traceback" not in text
    assert not out.exists()  # checked before anything is written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_lgcvd_cuda_without_cuda_as_a_process(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import vidrestore

    src = str(Path(vidrestore.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "vidrestore.cli.main", "train", "lgcvd", "--out", str(tmp_path / "x"), "--device", "cuda"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA is not available" in lines[0] and lines[0].startswith("vidrestore: error")
    assert not (tmp_path / "x").exists()


def test_eval_lift_scores_a_measurement_against_its_ground_truth(tmp_path):
    """`eval --lift` brings a measurement of another size onto the reference grid with its
    operator's lift; without it the size mismatch is one line that points at --lift."""
    import json as _json

    from vidrestore.io import read_video as _read
    from vidrestore.metrics import psnr as _psnr
    from vidrestore.ops import parse as _parse

    src = tmp_path / "clip.npz"
    write_video(src, torch.rand(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)))
    y, gt = tmp_path / "y.npz", tmp_path / "gt.npz"
    r = CliRunner().invoke(cli, ["degrade", str(src), "-o", str(y), "--op", "tblur:uniform:3:reflect,sr:2", "--gt", str(gt)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["eval", str(y), str(gt), "--no-warp"])
    assert r.exit_code == 2 and "pass --lift" in r.output and r.output.count("\n") == 1
    js = tmp_path / "m.json"
    r = CliRunner().invoke(cli, ["eval", str(y), str(gt), "--lift", "--no-warp", "--json", str(js)])
    assert r.exit_code == 0, r.output
    yv, _ = _read(y)
    expected = _psnr(_parse("tblur:uniform:3:reflect,sr:2", num_frames=4).lift(yv).clamp(0, 1), _read(gt)[0])
    assert abs(_json.loads(js.read_text())["psnr"] - float(expected)) < 1e-6


def test_restore_sigma_y_auto_estimates_the_noise(tmp_path):
    """`--sigma-y auto` estimates the noise of the measurement (Immerkaer) and says so."""
    import re

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    clip = torch.stack([torch.stack([0.5 + 0.3 * torch.sin(5 * xx + 2 * yy + 0.3 * k + c) for c in range(3)]) for k in range(4)], 1)[None]
    src = tmp_path / "smooth.npz"
    write_video(src, clip)
    y = tmp_path / "y.npz"
    assert CliRunner().invoke(cli, ["degrade", str(src), "-o", str(y), "--op", "sr:2", "--sigma-y", "0.03"]).exit_code == 0
    r = CliRunner().invoke(cli, ["restore", str(y), "-o", str(tmp_path / "x.npz"), "-m", "cg", "--sigma-y", "auto", "-q"])
    assert r.exit_code == 0, r.output
    est = float(re.search(r"sigma_y = ([0-9.e-]+)", r.output).group(1))
    assert abs(est - 0.03) < 0.003
    r = CliRunner().invoke(cli, ["restore", str(y), "-o", str(tmp_path / "z.npz"), "-m", "cg", "--sigma-y", "often", "-q"])
    assert r.exit_code == 2 and "noise std or auto" in r.output


#: ``train`` subcommands that build a config dataclass: (module, config class, trainer).
_TRAIN_CONFIGS = {
    "prior": ("vidrestore.train.prior", "PriorTrainConfig", "train_prior"),
    "bimnet": ("vidrestore.train.pvdnet", "BIMNetTrainConfig", "train_bimnet"),
    "pvdnet": ("vidrestore.train.pvdnet", "PVDNetTrainConfig", "train_pvdnet"),
}
#: Config fields without a flag of the same name and type (library-only, or parsed from another
#: form: prior's --extra-sizes text and --holdout-file); the call below checks the latter.
_NO_FLAG = {"log_every", "blur", "ema_decay", "net_kwargs", "extra_sizes", "holdout"}


@pytest.mark.parametrize("phase", list(_TRAIN_CONFIGS))
def test_train_flag_defaults_are_the_config_defaults(phase, monkeypatch, tmp_path):
    """Each flag named after a config field defaults to the field's default, and the command
    with only its required options hands the trainer the default config."""
    import dataclasses
    import importlib

    module, name, trainer = _TRAIN_CONFIGS[phase]
    mod = importlib.import_module(module)
    cls = getattr(mod, name)
    command = cli.commands["train"].commands[phase]
    params = {p.name: p for p in command.params}
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in dataclasses.fields(cls)}
    flagged = {n for n in defaults if n in params and n not in _NO_FLAG}
    assert set(defaults) - flagged <= _NO_FLAG
    for n in flagged:
        assert params[n].get_default(click.Context(command)) == defaults[n], n
    seen = {}
    monkeypatch.setattr(mod, trainer, lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    r = CliRunner().invoke(cli, ["train", phase, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert seen["args"][1:] == (str(tmp_path / "run"), cls())
    assert seen["kwargs"]["resume"] is False and seen["kwargs"]["num_threads"] is None
