"""vidrestore bench: protocol parsing, the tune/test separation, runs.csv, resume, statistics,
operator/network call counting and the classical baselines."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import yaml

from vidrestore import ops
from vidrestore.cli.main import main as cli_main
from vidrestore.diffusion import count_evaluations
from vidrestore.errors import UserError
from vidrestore.solvers import solve_cg
from vidrestore.solvers.baselines import solve_bm3d, solve_lift
from vidrestore.workflows import bench
from vidrestore.workflows.bench import RUN_COLUMNS, load_protocol, mean_ci, parse_protocol, run_bench, t_quantile, verdict


def _clip(path, seed, t=10, h=24, w=24):
    """A smooth moving pattern (uint8 frames, (T, H, W, 3))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for k in range(t):
        f = [0.5 + 0.4 * np.sin((xx + 1.5 * k) / rng.uniform(2, 5) + c) * np.cos((yy + 0.5 * k) / rng.uniform(2, 5)) for c in range(3)]
        frames.append(np.stack(f, -1))
    np.save(path, (np.clip(np.stack(frames), 0, 1) * 255).astype(np.uint8))
    return path.name


def _protocol(tmp_path, **changes):
    names = {n: _clip(tmp_path / f"{n}.npy", i) for i, n in enumerate(["a", "b", "c", "d"])}
    data = {
        "clips": names,
        "split": {"tune": ["a", "b"], "test": ["c", "d"]},
        "size": "16x16",
        "frames": 8,
        "seeds": [0, 1],
        "tasks": {"avg-sr": {"op": "tblur:uniform:3:reflect,sr:2", "sigma_y": 0.01}},
        "methods": {
            "cg": {"method": "cg", "iters": 10, "tune": {"lam": [0.0, 0.05]}},
            "bicubic": {"method": "bicubic"},
            "admm": {"method": "admm-tv", "iters": 2},
            "cg6": {"method": "cg", "iters": 6, "lam": 0.05},
            "cg-eq": {"method": "cg", "budget": {"match": "cg6", "like": "cg"}},
        },
    }
    data.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _read_runs(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


# ------------------------------------------------------------------------------ parser


@pytest.mark.parametrize(
    "change, message",
    [
        ({"split": {"tune": ["a", "zz"], "test": ["c", "d"]}}, "unknown clip 'zz'"),
        ({"split": {"tune": ["a", "c"], "test": ["c", "d"]}}, "in both the tune and the test split"),
        ({"methods": {"cg": {"method": "cg", "tune": {"bogus": [1, 2]}}}}, "unknown option 'bogus' in its tune grid"),
        ({"methods": {"cg": {"method": "cg", "steps": 3}}}, "unknown option(s) steps for cg"),
        ({"methods": {"x": {"method": "nope"}}}, "unknown method 'nope'"),
        ({"tasks": {"t": {"op": "bogus:1"}}}, "task 't'"),
        ({"size": "15x16"}, "multiples of 8"),
        ({"colour": 1}, "unknown key(s) colour"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"methods": {"cg": {"method": "cg", "budget": {"match": "svi"}}}}, "budget.match names 'svi'"),
    ],
)
def test_protocol_errors_are_one_line(tmp_path, change, message):
    path = _protocol(tmp_path, **change)
    with pytest.raises(UserError) as e:
        load_protocol(path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_protocol_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clips: [a, b\nsplit: {")
    with pytest.raises(UserError, match="invalid YAML") as e:
        load_protocol(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not found"):
        load_protocol(tmp_path / "missing.yaml")


def test_protocol_quick_block_and_applicability(tmp_path):
    path = _protocol(tmp_path, quick={"size": "8x8", "seeds": [3], "methods": ["cg"]},
                     tasks={"avg-sr": {"op": "tblur:uniform:3:reflect,sr:2", "sigma_y": 0.01}, "den": {"op": "id", "sigma_y": 0.05}})
    p = load_protocol(path)
    assert p.sizes == [(16, 16)] and p.seeds == [0, 1] and set(p.methods) == {"cg", "bicubic", "admm", "cg6", "cg-eq"}
    # interpolation applies to tasks with an sr factor only
    assert p.runs_for(p.methods["bicubic"], p.tasks["avg-sr"], (16, 16))
    assert not p.runs_for(p.methods["bicubic"], p.tasks["den"], (16, 16))
    q = load_protocol(path, quick=True)
    assert q.sizes == [(8, 8)] and q.seeds == [3] and set(q.methods) == {"cg"}


def test_protocol_extends_adds_methods_and_resumes_only_them(tmp_path):
    base = _protocol(tmp_path, methods={"cg": {"method": "cg", "iters": 4, "tune": {"lam": [0.0, 0.05]}}, "bicubic": {"method": "bicubic"}})
    sub = tmp_path / "more"
    sub.mkdir()
    ext = sub / "ext.yaml"
    ext.write_text(yaml.safe_dump({"extends": "../p.yaml", "seeds": [0], "methods": {"cg2": {"method": "cg", "iters": 2, "lam": 0.05}}}))
    p = load_protocol(ext)
    assert set(p.methods) == {"cg", "bicubic", "cg2"} and p.seeds == [0]
    assert p.clips["a"].path == str(tmp_path / "a.npy")  # the base's clip paths stay relative to the base
    out = tmp_path / "run"
    run_bench(load_protocol(base, ), out, quiet=True)
    _, before = _read_runs(out / "runs.csv")
    run_bench(p, out, resume=True, quiet=True)
    _, after = _read_runs(out / "runs.csv")
    added = after[len(before):]
    assert after[: len(before)] == before
    assert added and {r["method"] for r in added} == {"cg2"}
    nested = sub / "nested.yaml"
    nested.write_text(yaml.safe_dump({"extends": "ext.yaml"}))
    with pytest.raises(UserError, match="one level only"):
        load_protocol(nested)


def test_cli_bench_bad_protocol_exit_2(tmp_path, capsys):
    path = _protocol(tmp_path, split={"tune": ["a"], "test": ["a", "c"]})
    with pytest.raises(SystemExit) as e:
        cli_main(["bench", str(path), "-o", str(tmp_path / "out"), "-q"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidrestore: error: protocol") and "\n" not in err


# ------------------------------------------------------------------------------ running


def test_bench_end_to_end_schema_tuning_budget_resume(tmp_path, monkeypatch):
    path = _protocol(tmp_path)
    out = tmp_path / "out"
    info = run_bench(load_protocol(path), out, quiet=True)
    cols, rows = _read_runs(out / "runs.csv")
    assert tuple(cols) == RUN_COLUMNS
    # cg: 2 grid points x 2 tune clips x 2 seeds + 2 test clips x 2 seeds; bicubic and admm:
    # 4 tune + 4 test each (classical methods always run on the tune split); cg6 too; cg-eq: 4 test
    assert len(rows) == info["runs"] == 12 + 8 + 8 + 8 + 4
    for r in rows:
        assert math.isfinite(float(r["psnr"])) and 0 < float(r["ssim"]) <= 1 and float(r["seconds"]) >= 0
        assert r["split"] == ("tune" if r["clip"] in ("a", "b") else "test")
        assert float(r["nfe"]) == 0
    # tuning used the tune split only, chose the grid point with the best mean tune PSNR
    tuned = json.loads((out / "tuned.json").read_text())
    choice = tuned["choices"]["16x16"]["avg-sr"]["cg"]
    means = {}
    for g in choice["grid"]:
        vals = [float(r["psnr"]) for r in rows if r["method"] == "cg" and r["split"] == "tune" and json.loads(r["setting"]) == g["setting"]]
        assert len(vals) == 4
        means[json.dumps(g["setting"])] = sum(vals) / 4
        assert abs(g["tune_psnr"] - sum(vals) / 4) < 1e-3
    assert json.dumps(choice["chosen"]) == max(means, key=means.get)
    test_cg = [r for r in rows if r["method"] == "cg" and r["split"] == "test"]
    assert {r["setting"] for r in test_cg} == {json.dumps(choice["chosen"], sort_keys=True)}
    # operator applications: interpolation uses none, CG two per iteration
    assert all(int(r["a_calls"]) == 0 for r in rows if r["method"] == "bicubic")
    assert all(int(r["a_calls"]) > 10 for r in rows if r["method"] == "cg")
    # equal budget: cg-eq matches cg6's a_calls on the same problem to within one CG iteration
    ref = {(r["clip"], r["seed"]): int(r["a_calls"]) for r in rows if r["method"] == "cg6" and r["split"] == "test"}
    eq = [r for r in rows if r["method"] == "cg-eq"]
    assert len(eq) == 4
    for r in eq:
        assert abs(int(r["a_calls"]) - ref[(r["clip"], r["seed"])]) <= 2, r
        assert "lam" in r["setting"]  # cg's tuned setting
    summary = (out / "summary.md").read_text()
    assert "Tuned on: a, b" in summary and "Reported on: c, d" in summary and "Ground-truth E_warp" in summary
    assert "best classical (tune split)" in summary and (out / "psnr_16x16.png").stat().st_size > 1000
    # rerunning needs --resume; resuming runs nothing again
    with pytest.raises(UserError, match="--resume"):
        run_bench(load_protocol(path), out, quiet=True)
    before = (out / "runs.csv").read_text()

    def boom(*a, **k):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(bench, "restore_video", boom)
    run_bench(load_protocol(path), out, resume=True, quiet=True)
    assert (out / "runs.csv").read_text() == before
    # --report rewrites the same summary from runs.csv alone; missing runs are flagged
    (out / "summary.md").unlink()
    bench.write_report(load_protocol(path), out)
    assert (out / "summary.md").read_text() == summary
    _, rows = _read_runs(out / "runs.csv")
    keep = [r for r in rows if not (r["method"] == "bicubic" and r["clip"] == "d")]
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RUN_COLUMNS)
        w.writeheader()
        w.writerows(keep)
    bench.write_report(load_protocol(path), out)
    assert "only 2 of 4 runs" in (out / "summary.md").read_text()


def test_tuning_never_reads_a_test_clip(tmp_path):
    path = _protocol(tmp_path)
    for name in ("c.npy", "d.npy"):
        (tmp_path / name).write_bytes(b"this is not a video")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="clip 'c'"):
        run_bench(load_protocol(path), out, quiet=True)
    # every tuning run finished (and was written) before the first test clip was read
    _, rows = _read_runs(out / "runs.csv")
    assert rows and {r["split"] for r in rows} == {"tune"}
    assert len(rows) == 8 + 4 + 4 + 4
    assert (out / "tuned.json").exists()


# ------------------------------------------------------------------------------ statistics


def test_mean_ci_and_verdict():
    m, h = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert abs(h - 3.182 * math.sqrt((5 / 3) / 4)) < 1e-9
    assert t_quantile(3) == 3.182 and t_quantile(22) == 2.086 and t_quantile(1000) == 1.98
    assert math.isnan(mean_ci([1.0])[1])
    assert verdict(1.0, 0.5) == "better" and verdict(-1.0, 0.5) == "worse" and verdict(0.2, 0.5) == "no clear difference"


# ------------------------------------------------------------------------------ counting


def test_count_applications_counts_outermost_calls():
    A = ops.parse("tblur:uniform:3:reflect,blur:gauss:1,sr:2")
    x = torch.rand(1, 3, 6, 16, 16)
    with ops.count_applications() as n:
        A.A_adjoint(A.A(x))
        A.A_adjoint_A(x)
    assert n.calls == 4  # the three factors run nested: they do not count
    y = A.A(x)
    with ops.count_applications() as n:
        solve_cg(A, y, max_iter=5)
    assert n.calls == 1 + 2 + 2 * 5  # A^T y, the start residual A^T A x0, one A^T A per iteration
    with pytest.raises(RuntimeError):
        with ops.count_applications(), ops.count_applications():
            pass


def test_count_evaluations_counts_frames():
    from vidrestore.diffusion import DiscreteDiffusionDenoiser

    class Net(torch.nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)

    d = DiscreteDiffusionDenoiser(Net(), "linear")
    with count_evaluations() as n:
        d.eps(torch.zeros(2, 3, 5, 8, 8), 10)
        d.eps(torch.zeros(4, 3, 8, 8), 10)
    assert (n.calls, n.images) == (2, 14)


# ------------------------------------------------------------------------------ baselines


def test_lift_baselines_and_bm3d():
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    img = np.stack([0.5 + 0.3 * np.sin(6 * xx + c) * np.cos(4 * yy) for c in range(3)])
    x = torch.from_numpy(img).float()[None, :, None].repeat(1, 1, 2, 1, 1)
    from vidrestore.metrics import psnr

    A = ops.parse("sr:4")
    y = A.A(x)
    bic, lan = solve_lift(A, y), solve_lift(A, y, kernel="lanczos")
    assert bic.shape == lan.shape == x.shape
    assert psnr(bic, x) > 25 and psnr(lan, x) > 25
    assert torch.equal(bic, A.lift(y).clamp(0, 1))
    g = torch.Generator().manual_seed(0)
    noisy = x + 0.1 * torch.randn(x.shape, generator=g)
    den = solve_bm3d(ops.parse("id"), noisy, sigma_y=0.1)
    assert psnr(den, x) > psnr(noisy.clamp(0, 1), x) + 5
    with pytest.raises(UserError, match="needs the operator 'id'"):
        solve_bm3d(A, y, sigma_y=0.1)
    with pytest.raises(UserError, match="sigma_y > 0"):
        solve_bm3d(ops.parse("id"), noisy, sigma_y=0.0)


def test_bm4d_denoises_and_repairs_non_finite_voxels(monkeypatch):
    import bm4d

    from vidrestore.metrics import psnr
    from vidrestore.solvers.baselines import solve_bm4d

    yy, xx = np.mgrid[0:24, 0:24] / 24.0
    img = np.stack([0.5 + 0.3 * np.sin(6 * xx + c) * np.cos(4 * yy) for c in range(3)])
    x = torch.from_numpy(img).float()[None, :, None].repeat(1, 1, 4, 1, 1)
    g = torch.Generator().manual_seed(0)
    noisy = x + 0.1 * torch.randn(x.shape, generator=g)
    clean = solve_bm4d(ops.parse("id"), noisy, sigma_y=0.1)
    assert psnr(clean, x) > psnr(noisy.clamp(0, 1), x) + 5

    real = bm4d.bm4d_multichannel

    def leaky(vol, sigmas):  # the package's occasional NaN voxels, injected at a border
        out = np.array(real(vol, sigmas))
        out[1, -1, -1, -2:] = np.nan
        return out

    monkeypatch.setattr(bm4d, "bm4d_multichannel", leaky)
    repaired = solve_bm4d(ops.parse("id"), noisy, sigma_y=0.1)
    assert torch.isfinite(repaired).all()
    # only the corner pixels of the last two frames change (the package itself varies by ~1e-7),
    # and they stay denoised
    diff = (repaired - clean).abs().amax(dim=1)[0]
    assert diff[:-2].max() < 1e-5 and diff[:, :-1].max() < 1e-5 and diff[:, :, :-1].max() < 1e-5
    assert diff[-2:, -1, -1].min() > 1e-4
    assert (repaired - x).abs()[..., -2:, -1, -1].max() < 0.15
