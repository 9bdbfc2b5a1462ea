"""Ray backend on a local Ray instance (2 CPUs): same output as the local backend, worker death
retried, a permanently failing window fails the job without output, batch resume and failures.

Ray is in the ``dev`` extra, so CI runs these; the importorskip only guards installs without it.
"""


import pytest
import torch
from click.testing import CliRunner

ray = pytest.importorskip("ray")

from vidrestore.cli.main import cli  # noqa: E402
from vidrestore.io import read_video  # noqa: E402
from vidrestore.workflows import restore_file  # noqa: E402
from vidrestore.workflows.batch import read_manifest, restore_batch  # noqa: E402
from vidrestore.workflows.distributed import RayConfig  # noqa: E402
from vidrestore.workflows.scale import JobFailed  # noqa: E402

from faults import clear_faults, inject_fault  # noqa: E402
from test_batch import make_inputs  # noqa: E402

SVI = ["-m", "svi", "--steps", "2", "--cg-steps", "3", "--window", "6", "--overlap", "2", "--threads", "1", "-q"]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("ray"), n=3)


def test_cli_restore_ray_equals_local(inputs, tmp_path):
    src = str(inputs / "v0.npz")
    r = CliRunner().invoke(cli, ["restore", src, "-o", str(tmp_path / "local.npz"), *SVI])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["restore", src, "-o", str(tmp_path / "ray.npz"), *SVI, "--backend", "ray", "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert "ray" in r.output
    a, _ = read_video(tmp_path / "local.npz")
    b, _ = read_video(tmp_path / "ray.npz")
    assert a.shape == (1, 3, 12, 32, 32) and a.std() > 0.05
    assert torch.equal(a, b)  # bit-identical: same windows, same seeds, same stitching order


def test_dead_worker_is_replaced_and_window_retried(inputs, tmp_path, monkeypatch):
    marker = tmp_path / "died-once"
    inject_fault(monkeypatch, window=1, mode="exit", once=str(marker))
    opts = {"iters": 6, "window": 6, "overlap": 2}
    restore_file(inputs / "v1.npz", tmp_path / "ray.npz", method="cg", options=opts, quiet=True, threads=1, backend="ray", ray=RayConfig(workers=2, max_retries=1))
    assert marker.exists()  # the worker did die once (os._exit in the actor)
    clear_faults(monkeypatch)
    restore_file(inputs / "v1.npz", tmp_path / "local.npz", method="cg", options=opts, quiet=True, threads=1)
    assert torch.equal(read_video(tmp_path / "ray.npz")[0], read_video(tmp_path / "local.npz")[0])


def test_permanently_failing_window_fails_job_without_output(inputs, tmp_path, monkeypatch):
    inject_fault(monkeypatch, window=1, mode="exit")
    out = tmp_path / "never.npz"
    with pytest.raises(JobFailed, match=r"window 2/\d+ \(frames \d+-\d+\) of video failed after 2 attempts: WorkerDied"):
        restore_file(inputs / "v2.npz", out, method="cg", options={"iters": 4, "window": 6, "overlap": 2}, quiet=True, backend="ray", ray=RayConfig(workers=2, max_retries=1))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ray_batch_resume_and_failing_item(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg = RayConfig(workers=2, max_retries=1)
    kw = dict(method="cg", options={"iters": 5, "window": 6, "overlap": 2}, ext=".npz", quiet=True, backend="ray", ray=cfg, threads=1)
    seen = []

    def interrupt(name, status):
        seen.append(name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_batch(inputs, out, on_item=interrupt, **kw)
    first = seen[0]
    assert list(read_manifest(out)["items"]) == [first]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", first]  # nothing partial
    # Resume with one item failing on its workers every time: the other one still finishes.
    bad = next(n for n in ["v0.npz", "v1.npz", "v2.npz"] if n != first)
    inject_fault(monkeypatch, item=bad, mode="raise")
    r = restore_batch(inputs, out, **kw)
    assert r["skipped"] == [first] and list(r["failed"]) == [bad] and len(r["done"]) == 1
    assert "after 2 attempts: RuntimeError: injected fault" in r["failed"][bad]
    assert read_manifest(out)["items"][bad]["status"] == "failed"
    # Outputs equal the local backend's.
    clear_faults(monkeypatch)
    good = r["done"][0]
    restore_file(inputs / good, tmp_path / "local.npz", method="cg", options=kw["options"], quiet=True, threads=1)
    assert torch.equal(read_video(out / good)[0], read_video(tmp_path / "local.npz")[0])
