"""Windows as work units (plan -> window k -> stitch) and the resumable batch runner (local backend).

The Ray backend runs the same code paths; tests/test_ray.py checks it on a local Ray instance.
"""

import os

import pytest
import torch
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.io import read_video, write_video
from vidrestore.ops import measure, parse
from vidrestore.solvers import WindowedProblem, solve_cg, solve_in_windows
from vidrestore.workflows import degrade_file, restore_file, restore_video
from vidrestore.workflows.batch import MANIFEST, read_manifest, restore_batch
from vidrestore.workflows.scale import JobFailed

from faults import clear_faults, inject_fault

OP = "tblur:uniform:3:circular,sr:2"


def _clip(seed: int, t: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand((1, 3, 8, 8), generator=g), size=(32, 32), mode="bicubic")
    return torch.stack([torch.roll(base, i, dims=3) for i in range(t)], 2).clamp(0, 1)


def make_inputs(folder, n=3, t=12):
    """n measurements (with sidecars) of different clips in folder."""
    src = folder / "src"
    for i in range(n):
        write_video(src / f"clip{i}.npz", _clip(i, t), 24.0)
        degrade_file(src / f"clip{i}.npz", folder / "in" / f"v{i}.npz", op=OP, sigma_y=0.01, seed=i)
    return folder / "in"


def test_windowed_problem_order_independent_and_equal_to_solve_in_windows():
    x = _clip(0, 14)
    op = parse(OP, num_frames=14)
    y = measure(op, x, 0.0, torch.Generator().manual_seed(1))
    problem = WindowedProblem(op, y, window=6, overlap=2)
    n = len(problem)
    assert n >= 3
    cores = {k: problem.solve_window(solve_cg, k, max_iter=8) for k in reversed(range(n))}
    ref = solve_in_windows(solve_cg, op, y, window=6, overlap=2, max_iter=8)
    st = problem.stitcher()
    for k in [2, 0, 1] + list(range(3, n)):  # out of order: blended in window order anyway
        st.add(k, cores[k])
    assert torch.equal(st.result(), ref)
    assert torch.equal(problem.stitch([cores[k] for k in range(n)]), ref)
    # Cores tile the clip: frames of the first window's core come from window 0 only.
    s, e = problem.plan[0].core
    assert torch.equal(ref[:, :, s : problem.plan[1].core[0]], cores[0][:, :, : problem.plan[1].core[0] - s])
    with pytest.raises(ValueError):
        st.add(0, cores[0])


def test_restore_video_windows_match_library_loop():
    """restore_video's worker path (setup once, window k) equals the library's window loop."""
    x = _clip(3, 12)
    op = parse(OP, num_frames=12)
    y = measure(op, x, 0.0, torch.Generator().manual_seed(1))
    got = restore_video(y, op, method="cg", options={"iters": 8, "window": 6, "overlap": 2}, quiet=True, threads=1)
    ref = solve_in_windows(lambda o, yy: solve_cg(o, yy, lam=0.0, max_iter=8), op, y, window=6, overlap=2)
    assert torch.equal(got, ref)
    whole = restore_video(y, op, method="cg", options={"iters": 8}, quiet=True)
    assert torch.allclose(whole, solve_cg(op, y, max_iter=8))


def test_batch_restores_all_and_writes_manifest(tmp_path):
    in_dir = make_inputs(tmp_path)
    r = restore_batch(in_dir, tmp_path / "out", method="cg", options={"iters": 5}, ext=".npz", quiet=True)
    assert r["done"] == ["v0.npz", "v1.npz", "v2.npz"] and not r["failed"] and not r["skipped"]
    m = read_manifest(tmp_path / "out")
    assert {k: v["status"] for k, v in m["items"].items()} == {"v0.npz": "done", "v1.npz": "done", "v2.npz": "done"}
    assert m["config"]["method"] == "cg" and m["config"]["options"]["iters"] == 5
    # Each output equals the single-video restore of the same input.
    restore_file(in_dir / "v1.npz", tmp_path / "single.npz", method="cg", options={"iters": 5}, quiet=True)
    a, _ = read_video(tmp_path / "out" / "v1.npz")
    b, _ = read_video(tmp_path / "single.npz")
    assert torch.equal(a, b)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_batch_resumes_after_interruption(tmp_path):
    in_dir = make_inputs(tmp_path)
    out = tmp_path / "out"

    def stop_after_first(name, status):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_batch(in_dir, out, method="cg", options={"iters": 5}, ext=".npz", quiet=True, on_item=stop_after_first)
    m = read_manifest(out)
    assert list(m["items"]) == ["v0.npz"] and m["items"]["v0.npz"]["status"] == "done"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "v0.npz"]
    stamp = os.stat(out / "v0.npz").st_mtime_ns
    r = restore_batch(in_dir, out, method="cg", options={"iters": 5}, ext=".npz", quiet=True)
    assert r["skipped"] == ["v0.npz"] and r["done"] == ["v1.npz", "v2.npz"] and not r["failed"]
    assert os.stat(out / "v0.npz").st_mtime_ns == stamp  # not recomputed
    # A different configuration redoes everything; a deleted output is redone.
    (out / "v2.npz").unlink()
    r = restore_batch(in_dir, out, method="cg", options={"iters": 5}, ext=".npz", quiet=True)
    assert r["done"] == ["v2.npz"] and r["skipped"] == ["v0.npz", "v1.npz"]
    r = restore_batch(in_dir, out, method="cg", options={"iters": 6}, ext=".npz", quiet=True)
    assert r["done"] == ["v0.npz", "v1.npz", "v2.npz"]


def test_batch_failing_items_reported_others_finish(tmp_path, monkeypatch):
    in_dir = make_inputs(tmp_path)
    (in_dir / "broken.npz").write_bytes(b"not a zip file")  # unreadable input
    # And a window that always fails for v1 (test hook; retried 0 times locally).
    inject_fault(monkeypatch, item="v1", window=1, mode="raise")
    r = restore_batch(in_dir, tmp_path / "out", method="cg", options={"iters": 5, "window": 6, "overlap": 2}, ext=".npz", quiet=True)
    assert r["done"] == ["v0.npz", "v2.npz"]
    assert set(r["failed"]) == {"broken.npz", "v1.npz"}
    assert "window 2/" in r["failed"]["v1.npz"] and "injected fault" in r["failed"]["v1.npz"]
    m = read_manifest(tmp_path / "out")
    assert m["items"]["v1.npz"]["status"] == "failed" and "injected" in m["items"]["v1.npz"]["error"]
    assert not (tmp_path / "out" / "v1.npz").exists() and not (tmp_path / "out" / "broken.npz").exists()
    # Re-run without the fault: only the failed ones are retried.
    clear_faults(monkeypatch)
    (in_dir / "broken.npz").unlink()
    r = restore_batch(in_dir, tmp_path / "out", method="cg", options={"iters": 5, "window": 6, "overlap": 2}, ext=".npz", quiet=True)
    assert r["done"] == ["v1.npz"] and r["skipped"] == ["v0.npz", "v2.npz"]


def test_failing_window_fails_restore_cleanly(tmp_path, monkeypatch):
    in_dir = make_inputs(tmp_path, n=1)
    inject_fault(monkeypatch, window=0, mode="raise")
    with pytest.raises(JobFailed, match=r"window 1/\d+ \(frames 0-\d+\) of .*injected fault"):
        restore_file(in_dir / "v0.npz", tmp_path / "out.npz", method="cg", options={"iters": 3, "window": 6, "overlap": 2}, quiet=True)
    assert not (tmp_path / "out.npz").exists()
    code = CliRunner().invoke(cli, ["restore", str(in_dir / "v0.npz"), "-o", str(tmp_path / "o.npz"), "--iters", "3", "-q"])
    assert code.exit_code == 2 and "vidrestore: error: window 1/1" in code.output and not (tmp_path / "o.npz").exists()


def test_cli_batch(tmp_path):
    in_dir = make_inputs(tmp_path, n=2)
    (in_dir / "bad.npz").write_bytes(b"junk")
    res = CliRunner().invoke(cli, ["batch", str(in_dir), str(tmp_path / "out"), "-m", "cg", "--iters", "4", "--ext", "npz", "-q"])
    assert res.exit_code == 1
    assert "2 restored, 0 already done, 1 failed" in res.output and "failed: bad.npz" in res.output
    (in_dir / "bad.npz").unlink()
    res = CliRunner().invoke(cli, ["batch", str(in_dir), str(tmp_path / "out"), "-m", "cg", "--iters", "4", "--ext", "npz", "-q"])
    assert res.exit_code == 0 and "0 restored, 2 already done, 0 failed" in res.output
    res = CliRunner().invoke(cli, ["batch", str(in_dir), str(in_dir), "-q"])
    assert res.exit_code == 2 and "must differ" in res.output
    res = CliRunner().invoke(cli, ["restore", str(in_dir / "v0.npz"), "-o", str(tmp_path / "x.npz"), "--workers", "2"])
    assert res.exit_code == 2 and "--backend ray" in res.output


def test_cli_batch_pvdnet_equals_restore_of_each_clip(tmp_path):
    """The blind method runs through the same batch path as the others: every clip's output
    equals ``restore -m pvdnet`` of that clip with the same options."""
    for i in range(2):
        write_video(tmp_path / "in" / f"c{i}.npz", _clip(10 + i, 5), 24.0)
    res = CliRunner().invoke(cli, ["batch", str(tmp_path / "in"), str(tmp_path / "out"), "-m", "pvdnet", "--flow", "zero", "--ext", "npz", "-q"])
    assert res.exit_code == 0, res.output
    assert "2 restored, 0 already done, 0 failed" in res.output
    for i in range(2):
        restore_file(tmp_path / "in" / f"c{i}.npz", tmp_path / f"r{i}.npz", method="pvdnet", options={"flow": "zero"}, quiet=True)
        got, want = read_video(tmp_path / "out" / f"c{i}.npz")[0], read_video(tmp_path / f"r{i}.npz")[0]
        assert got.shape == (1, 3, 5, 32, 32) and torch.equal(got, want)
        assert float((got - read_video(tmp_path / "in" / f"c{i}.npz")[0]).abs().max()) > 0  # the network ran


def test_cli_help_lists_backend_options():
    for sub in ("restore", "batch"):
        res = CliRunner().invoke(cli, [sub, "--help"])
        assert res.exit_code == 0
        for flag in ("--backend", "--address", "--workers", "--threads", "--retries"):
            assert flag in res.output


def test_method_options_are_typed_with_one_source_of_defaults():
    from vidrestore.errors import UserError
    from vidrestore.workflows.methods import METHOD_OPTIONS, NOISY_DIFFUSION, CGOptions, SVIOptions, make_options

    assert SVIOptions.for_noise(0.05).t_start == NOISY_DIFFUSION["t_start"] == 200
    assert SVIOptions.for_noise(0.0).t_start == 300 and SVIOptions(t_start=300).resolve(0.05).t_start == 300
    assert (SVIOptions().eta, SVIOptions().cg_steps, SVIOptions().steps) == (0.8, 20, 20)
    assert make_options("svi", {"steps": 3}) == SVIOptions(steps=3) and "cg_steps" in METHOD_OPTIONS["svi"]
    with pytest.raises(UserError, match="method cg does not take --cg-steps"):
        make_options("cg", {"cg_steps": 3})
    with pytest.raises(UserError, match="takes CGOptions"):
        make_options("cg", SVIOptions())
    op = parse(OP, num_frames=8)
    y = measure(op, _clip(1, 8), 0.0, torch.Generator().manual_seed(1))
    a = restore_video(y, op, method="cg", options={"iters": 4}, quiet=True)
    b = restore_video(y, op, method="cg", options=CGOptions(iters=4), quiet=True)
    assert torch.equal(a, b)
