"""Never lose or silently corrupt a user's data: one test per guarantee.

No overwrite of inputs, outputs checked before work, one meaning for --seed, one-line errors
(exit 2) for bad values, usage errors and full disks, a batch that notices changed inputs,
no leftover temporaries, truncated videos detected.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.io import write_video
from vidrestore.io.testsrc import write_test_clip
from vidrestore.workflows import degrade_file
from vidrestore.workflows.batch import read_manifest, restore_batch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def one_line_error(code, out, needle=""):
    lines = [l for l in out.splitlines() if l.strip()]
    assert code == 2, out
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error: "), out
    assert "Traceback" not in out and "Usage:" not in out
    assert needle in lines[0], out


def _clip(t=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand((1, 3, 8, 8), generator=g), size=(size, size), mode="bicubic")
    return torch.stack([torch.roll(base, i, dims=3) for i in range(t)], 2).clamp(0, 1)


@pytest.fixture
def meas(tmp_path):
    """A clean clip and its inpainting measurement y.npz (operator seed 5) with sidecar."""
    write_video(tmp_path / "clip.npz", _clip(), 24.0)
    degrade_file(tmp_path / "clip.npz", tmp_path / "y.npz", op="inpaint:0.5", seed=5)
    return tmp_path / "y.npz"


def _temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# --------------------------------------------------------------------------- 1. no overwrite


def test_restore_refuses_to_overwrite_its_input(meas, monkeypatch):
    before = meas.read_bytes(), (meas.parent / "y.npz.json").read_bytes()
    for out in (meas, meas.parent / "." / "y.npz"):
        one_line_error(*run("restore", meas, "-o", out, "-m", "cg", "-q"), "would overwrite the input")
    monkeypatch.chdir(meas.parent)
    one_line_error(*run("restore", "y.npz", "-o", "./y.npz", "-q"), "would overwrite the input")
    assert (meas.read_bytes(), (meas.parent / "y.npz.json").read_bytes()) == before


def test_degrade_refuses_to_overwrite_its_source(tmp_path):
    src = tmp_path / "clip.mp4"
    write_video(src, _clip(), 24.0)
    before = src.read_bytes()
    one_line_error(*run("degrade", src, "-o", src, "--op", "sr:2"), "would overwrite the input")
    one_line_error(*run("degrade", src, "-o", tmp_path / "y.npz", "--op", "sr:2", "--gt", src), "would overwrite the input")
    assert src.read_bytes() == before and not (tmp_path / "clip.mp4.json").exists()


def test_batch_refuses_an_output_that_is_an_input(tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    write_video(tmp_path / "clip.npz", _clip(), 24.0)
    degrade_file(tmp_path / "clip.npz", in_dir / "v.npz", op="sr:2")
    out_dir.mkdir()
    (out_dir / "v.npz").symlink_to(in_dir / "v.npz")  # the output would write through to the input
    before = (in_dir / "v.npz").read_bytes()
    one_line_error(*run("batch", in_dir, out_dir, "--ext", ".npz", "-q"), "would overwrite the input")
    assert (in_dir / "v.npz").read_bytes() == before


def test_output_checked_before_any_work(meas, monkeypatch):
    import vidrestore.workflows.jobs as jobs

    def boom(*a, **k):
        raise AssertionError("the input was read before the output was checked")

    monkeypatch.setattr(jobs, "read_video", boom)
    one_line_error(*run("restore", meas, "-o", meas.parent / "r.xyz", "-m", "svi", "-q"), "unsupported extension")
    (meas.parent / "file").write_text("")
    one_line_error(*run("restore", meas, "-o", meas.parent / "file" / "r.npz", "-q"), "is not a folder")
    one_line_error(*run("degrade", meas, "-o", meas.parent / "d.avix", "--op", "id"), "unsupported extension")
    (meas.parent / "dir.npz").mkdir()
    one_line_error(*run("restore", meas, "-o", meas.parent / "dir.npz", "-q"), "a folder with that name exists")


# --------------------------------------------------------------------------- 2. seeds


@pytest.fixture
def fake_svi(monkeypatch):
    """Replace the prior and the SVI solver: record the sampling seed and the operator seeds."""
    import vidrestore.priors
    import vidrestore.solvers
    from vidrestore.ops import Inpaint

    calls = []

    def solve_svi(prior, op, y, *, seed, callback=None, **kw):
        calls.append((seed, sorted({m.seed for m in op.modules() if isinstance(m, Inpaint)})))
        return op.lift(y)

    monkeypatch.setattr(vidrestore.priors, "load_prior", lambda *a, **k: object())
    monkeypatch.setattr(vidrestore.solvers, "solve_svi", solve_svi)
    return calls


def test_seed_is_the_sampling_seed_and_op_seed_comes_from_the_sidecar(meas, fake_svi):
    out = meas.parent / "r.npz"
    code, text = run("restore", meas, "-o", out, "-m", "svi", "-q", "--seed", "7")
    assert code == 0, text
    assert {c[0] for c in fake_svi} == {7} and {s for c in fake_svi for s in c[1]} == {5}
    assert "warning" not in text
    fake_svi.clear()
    code, text = run("restore", meas, "-o", out, "-m", "svi", "-q")
    assert code == 0 and {c[0] for c in fake_svi} == {0} and {s for c in fake_svi for s in c[1]} == {5}


def test_op_seed_overrides_the_sidecar_with_a_warning(meas, fake_svi):
    code, text = run("restore", meas, "-o", meas.parent / "r.npz", "-m", "svi", "-q", "--op-seed", "6")
    assert code == 0, text
    assert {s for c in fake_svi for s in c[1]} == {6} and {c[0] for c in fake_svi} == {0}
    warn = [l for l in text.splitlines() if l.startswith("vidrestore: warning:")]
    assert len(warn) == 1 and "--op-seed 6 differs from the seed 5" in warn[0]
    code, text = run("restore", meas, "-o", meas.parent / "r.npz", "-m", "svi", "-q", "--op-seed", "5")
    assert code == 0 and "warning" not in text


def test_batch_seed_reaches_the_solver(meas, fake_svi, tmp_path):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    for name in ("y.npz", "y.npz.json"):
        (in_dir / name).write_bytes((meas.parent / name).read_bytes())
    r = restore_batch(in_dir, tmp_path / "out", method="svi", seed=9, ext=".npz", quiet=True)
    assert r["done"] == ["y.npz"] and {c[0] for c in fake_svi} == {9} and {s for c in fake_svi for s in c[1]} == {5}


def test_huge_seed_is_a_usage_error(meas):
    one_line_error(*run("restore", meas, "-o", meas.parent / "r.npz", "--op-seed", str(2**70)), "--op-seed")
    one_line_error(*run("degrade", meas.parent / "clip.npz", "-o", meas.parent / "z.npz", "--op", "inpaint:0.5", "--seed", str(2**70)), "--seed")


# --------------------------------------------------------------------------- 3. specs (more in test_fuzz.py)


@pytest.mark.parametrize("spec", ["SR:0", "blur:gauss:nan", "blur:motion:5:-inf", "blur:gauss:1e9", "tblur:uniform:10000000000", "blur:motion:20000:0"])
def test_bad_spec_is_one_line(tmp_path, spec):
    write_video(tmp_path / "clip.npz", _clip(), 24.0)
    one_line_error(*run("degrade", tmp_path / "clip.npz", "-o", tmp_path / "y.npz", "--op", spec), "bad operator token")
    assert not (tmp_path / "y.npz").exists()


# --------------------------------------------------------------------------- 4. disk full


@pytest.mark.parametrize("where", ["first frames", "final copy"])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_write_error_is_one_line(meas, monkeypatch, err, where):
    import vidrestore.io.stream as stream

    def fail(*a, **k):
        raise OSError(err, os.strerror(err))

    # The streamed writer fails when it starts the file, or when it packs the finished frames.
    if where == "first frames":
        monkeypatch.setattr(np.lib.format, "write_array_header_1_0", fail)
    else:
        monkeypatch.setattr(stream.shutil, "copyfileobj", fail)
    out = meas.parent / "r.npz"
    one_line_error(*run("restore", meas, "-o", out, "-m", "cg", "--iters", "2", "-q"), os.strerror(err))
    assert not out.exists() and _temps(meas.parent) == []


def test_batch_manifest_write_error_is_one_line(meas, monkeypatch, tmp_path):
    import vidrestore.workflows.batch as batch

    in_dir = tmp_path / "in"
    in_dir.mkdir()
    for name in ("y.npz", "y.npz.json"):
        (in_dir / name).write_bytes((meas.parent / name).read_bytes())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch, "atomic_write_text", full)
    one_line_error(*run("batch", in_dir, tmp_path / "out", "--iters", "2", "--ext", ".npz", "-q"), "cannot save the batch manifest")


# --------------------------------------------------------------------------- 5. batch notices changes


def test_batch_reruns_changed_inputs_and_sidecars(tmp_path):
    write_video(tmp_path / "clip.npz", _clip(), 24.0)
    write_video(tmp_path / "clip2.npz", _clip(seed=1), 24.0)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        degrade_file(tmp_path / "clip.npz", in_dir / f"v{i}.npz", op="sr:2", sigma_y=0.01, seed=i)
    kw = dict(method="cg", options={"iters": 3}, ext=".npz", quiet=True)
    assert len(restore_batch(in_dir, out_dir, **kw)["done"]) == 3
    assert read_manifest(out_dir)["items"]["v0.npz"]["content"]["input"]
    degrade_file(tmp_path / "clip2.npz", in_dir / "v1.npz", op="sr:2", sigma_y=0.01, seed=1)  # new content
    side = in_dir / "v2.npz.json"
    meta = json.loads(side.read_text())
    meta["sigma_y"] = 0.02
    side.write_text(json.dumps(meta))  # only the sidecar changes
    r = restore_batch(in_dir, out_dir, **kw)
    assert r["done"] == ["v1.npz", "v2.npz"] and r["skipped"] == ["v0.npz"]
    r = restore_batch(in_dir, out_dir, **kw)
    assert r["done"] == [] and len(r["skipped"]) == 3


# --------------------------------------------------------------------------- 6. temporaries


def test_sigterm_removes_the_temp_file_and_exits_143(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from vidrestore.io import atomic_path, install_sigterm_cleanup
        assert install_sigterm_cleanup()
        with atomic_path({str(tmp_path / 'out.bin')!r}) as tmp:
            tmp.write_bytes(b"partial")
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})
    assert p.returncode == 143, p.stderr
    assert not Path(p.stdout.strip()).exists() and _temps(tmp_path) == [] and not (tmp_path / "out.bin").exists()


def test_cli_installs_the_sigterm_handler(meas):
    before = signal.getsignal(signal.SIGTERM)
    try:
        code, text = run("restore", meas, "-o", meas.parent / "r.npz", "--iters", "2", "-q")
        assert code == 0, text
        from vidrestore.io.atomic import _on_sigterm

        assert signal.getsignal(signal.SIGTERM) is _on_sigterm
    finally:
        signal.signal(signal.SIGTERM, before)


def test_stale_temporaries_are_swept_at_start(meas):
    d = meas.parent
    dead = [d / ".r.npz.tmp-999999999-deadbeef", d / ".r.npz.tmp-0123abcd", d / ".r.npz.old-999999999-0badf00d"]
    for p in dead[:2]:
        p.write_bytes(b"junk")
    dead[2].mkdir()
    live = d / f".r.npz.tmp-{os.getpid()}-abcdef01"  # a running process's temp is kept
    live.write_bytes(b"")
    other = d / ".r.npz.tmp-notours"
    other.write_bytes(b"")
    code, text = run("restore", meas, "-o", d / "r.npz", "--iters", "2", "-q")
    assert code == 0, text
    assert not any(p.exists() for p in dead) and live.exists() and other.exists()


# --------------------------------------------------------------------------- 7. truncated containers


def _faststart_mp4(path, x):
    frames = (x[0].permute(1, 2, 3, 0).numpy() * 255).astype(np.uint8)
    write_test_clip(path, frames, 10, container_options={"movflags": "faststart"})


@pytest.mark.parametrize("kind", ["mkv", "mp4-faststart"])
def test_truncated_container_is_an_error_unless_allowed(tmp_path, kind):
    x = torch.rand((1, 3, 16, 32, 32), generator=torch.Generator().manual_seed(0))
    full = tmp_path / ("full.mkv" if kind == "mkv" else "full.mp4")
    write_video(full, x, 10.0) if kind == "mkv" else _faststart_mp4(full, x)
    cut = tmp_path / ("cut" + full.suffix)
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    one_line_error(*run("degrade", cut, "-o", tmp_path / "y.npz", "--op", "id"), "truncated")
    assert not (tmp_path / "y.npz").exists()
    code, text = run("degrade", cut, "-o", tmp_path / "y.npz", "--op", "id", "--allow-truncated")
    assert code == 0, text
    warn = [l for l in text.splitlines() if l.startswith("vidrestore: warning:")]
    assert len(warn) == 1 and "truncated" in warn[0] and "of the 16 frames" in warn[0]
    assert 0 < json.loads((tmp_path / "y.npz.json").read_text())["frames"] < 16
    code, text = run("degrade", full, "-o", tmp_path / "z.npz", "--op", "id")
    assert code == 0 and "warning" not in text


# --------------------------------------------------------------------------- 8. numbers and usage


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "2"])
def test_invalid_sigma_y_is_refused(meas, value):
    one_line_error(*run("restore", meas, "-o", meas.parent / "r.npz", "-m", "cg", "--sigma-y", value), "--sigma-y")
    one_line_error(*run("degrade", meas.parent / "clip.npz", "-o", meas.parent / "d.npz", "--op", "id", "--sigma-y", value), "--sigma-y")
    assert not (meas.parent / "d.npz").exists() and not (meas.parent / "d.npz.json").exists()


def test_degrade_library_refuses_nan_sigma(tmp_path):
    from vidrestore.errors import UserError

    write_video(tmp_path / "clip.npz", _clip(), 24.0)
    with pytest.raises(UserError, match="finite"):
        degrade_file(tmp_path / "clip.npz", tmp_path / "y.npz", op="id", sigma_y=float("nan"))
    assert not (tmp_path / "y.npz.json").exists()


@pytest.mark.parametrize("args", [["restore"], ["restore", "y.npz"], ["degrade", "a", "-o", "b"], ["restore", "y.npz", "-o", "r.npz", "--bogus"], ["nosuchcommand"],
                                  ["restore", "y.npz", "-o", "r.npz", "--eta", "nan"], ["restore", "y.npz", "-o", "r.npz", "--lam", "inf"]])
def test_usage_errors_are_one_line(args):
    one_line_error(*run(*args))


def test_help_and_version_still_work():
    code, out = run("--version")
    assert code == 0 and "vidrestore" in out
    code, out = run("restore", "--help")
    assert code == 0 and "--op-seed" in out and "--allow-truncated" in out


# --------------------------------------------------------------------------- 9. cosmetics


def test_normal_run_prints_no_python_warnings(meas, fake_svi):
    code, text = run("restore", meas, "-o", meas.parent / "r.npz", "-m", "svi", "-q")
    assert code == 0 and "Warning" not in text and "libpng" not in text


def test_corrupt_png_frame_is_one_line_without_libpng_noise(tmp_path):
    """A corrupt PNG in a frame folder: one 'vidrestore: error' line on stderr, exit 2; the
    decoder library's own messages ('libpng error: ...') do not leak through."""
    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    img = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    for i in (1, 2):
        cv2.imwrite(str(folder / f"{i:04d}.png"), img)
    data = (folder / "0002.png").read_bytes()
    (folder / "0002.png").write_bytes(data[:60] + b"\0" * 20 + data[80:])  # broken IDAT
    code = f"from vidrestore.cli.main import main; main(['degrade', {str(folder)!r}, '-o', {str(tmp_path / 'y.npz')!r}, '--op', 'sr:2'])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error: cannot read image") and "0002.png" in lines[0], p.stderr
    assert not (tmp_path / "y.npz").exists()
