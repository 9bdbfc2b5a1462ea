"""Progress reporting: one step per solver step, an up-front estimate for long jobs, a final
line with the steps and wall time (and early convergence), nothing with quiet."""

from __future__ import annotations

import io

import pytest
import torch

from vidrestore.io import write_video
from vidrestore.workflows import progress as progress_mod
from vidrestore.workflows.progress import progress


def test_progress_lines(monkeypatch):
    monkeypatch.setattr(progress_mod, "ESTIMATE_AFTER_S", 0.0)
    out = io.StringIO()
    with progress(4, "job", stream=out) as step:
        for _ in range(4):
            step()
    text = out.getvalue()
    assert "job: about " in text and "on this machine (4 steps)" in text
    assert text.rstrip().splitlines()[-1].startswith("job: 4/4 steps in ")
    out = io.StringIO()
    with progress(50, "cg", stream=out) as step:
        for _ in range(8):
            step()
    assert "cg: 8/50 steps in" in out.getvalue() and "stopped early after 8 of 50: converged" in out.getvalue()
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with progress(5, "boom", stream=out) as step:
            step()
            raise RuntimeError("x")
    assert "steps in" not in out.getvalue()  # no summary line for a failed job
    out = io.StringIO()
    with progress(3, "quiet", quiet=True, stream=out) as step:
        for _ in range(3):
            step()
    assert out.getvalue() == ""


def test_svi_and_lgcvd_report_every_step(tmp_path, capsys):
    """A diffusion restore advances once per diffusion step, LGC-VD once per sampler step."""
    from vidrestore.workflows import degrade_file, restore_file
    from vidrestore.workflows.lgcvd import predict_file

    src = tmp_path / "clip.npz"
    write_video(src, torch.rand(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)))
    degrade_file(src, tmp_path / "y.npz", op="sr:2", sigma_y=0.01)
    capsys.readouterr()
    restore_file(tmp_path / "y.npz", tmp_path / "x.npz", method="svi", options={"steps": 3, "cg_steps": 1})
    err = capsys.readouterr().err
    assert "svi (1 window, local): 3/3 steps in" in err
    grey = tmp_path / "grey.npz"
    write_video(grey, torch.rand(1, 1, 3, 32, 32, generator=torch.Generator().manual_seed(1)).expand(1, 3, -1, -1, -1))
    predict_file(grey, tmp_path / "p.npz", frames=2, steps=2)
    err = capsys.readouterr().err
    assert "predict (sampler steps): 2/2 steps in" in err


def test_batch_reports_videos_and_the_steps_of_all_videos(tmp_path, capsys):
    """``batch`` shows a bar of videos and one of solver steps summed over the videos as they load."""
    from vidrestore.workflows.batch import restore_batch

    in_dir = tmp_path / "in"
    in_dir.mkdir()
    for i in range(2):
        write_video(in_dir / f"v{i}.npz", torch.rand(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(i)))
    seen = []
    with progress_mod.progress_listener(lambda done, total, desc: seen.append((desc.strip(), done, total))):
        r = restore_batch(in_dir, tmp_path / "out", method="cg", op="sr:2", options={"iters": 4}, ext=".npz")
    assert r["done"] == ["v0.npz", "v1.npz"]
    err = capsys.readouterr().err
    assert "batch cg (local): 2/2 videos in" in err
    import re

    m = re.search(r"cg steps \(all videos\): (\d+)/8 steps in", err)  # 4 iterations per video (CG may converge sooner)
    assert m and 2 <= int(m.group(1)) <= 8
    totals = [t for desc, d, t in seen if desc.startswith("cg steps") and d > 0]
    assert totals[0] == 4 and totals[-1] == 8  # the total grew when the second video loaded


def test_long_steps_report_fractions_of_tiles_and_chunks(monkeypatch):
    """Within one step, prior chunks and spatial tiles move the bar (and the listeners) by fractions."""
    from torch import nn

    from vidrestore.heartbeat import fraction_listener
    from vidrestore.priors import Prior
    from vidrestore.tiling import tiled_map

    seen = []
    with fraction_listener(seen.append):
        tiled_map(lambda t: t * 2, torch.rand(1, 3, 64, 64), 32, 8)
    assert len(seen) >= 4 and seen == sorted(seen) and seen[-1] == 1.0

    class Zero(nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)

    prior = Prior(Zero(), "linear", chunk_size=2)
    seen.clear()
    with fraction_listener(seen.append):
        prior.eps(torch.rand(6, 3, 8, 8), torch.full((6,), 10))
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])

    clock = iter(range(0, 10_000, 1))  # one second per call: every fraction passes the throttle
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: float(next(clock)))
    updates = []
    with progress_mod.progress_listener(lambda d, t, desc: updates.append(d)):
        with progress(2, "job", stream=io.StringIO()) as step:
            prior.eps(torch.rand(6, 3, 8, 8), torch.full((6,), 10))
            step()
            prior.eps(torch.rand(6, 3, 8, 8), torch.full((6,), 10))
            step()
    assert updates == pytest.approx([0, 0.33, 0.66, 0.99, 1, 1.33, 1.66, 1.99, 2])
