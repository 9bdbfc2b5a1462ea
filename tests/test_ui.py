"""The web app (``vidrestore ui``): its jobs, its ``restore`` API endpoint called with
gradio_client, and an end-to-end run in headless Chromium (the system browser, driven by
Selenium; skipped only where no Chromium is installed: Debian ``chromium`` + ``chromium-driver``)."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.errors import UserError, error_line
from vidrestore.io import read_video, write_video
from vidrestore.workflows.progress import progress, progress_listener
from vidrestore.workflows.ui import TASK_PRESETS, UI_METHODS, estimate_job, restore_for_api, run_job



def _tiny(path: Path, frames: int = 4, size: int = 32) -> torch.Tensor:
    """A smooth moving colour pattern, ``(1, 3, frames, size, size)``."""
    t = torch.linspace(0, 1, size)
    base = torch.sin(6 * t)[None, :] * torch.cos(4 * t)[:, None] * 0.4 + 0.5
    x = torch.stack([torch.roll(base, i, 1) for i in range(frames)], 0)[None, None].repeat(1, 3, 1, 1, 1)
    x[:, 1] *= 0.8
    x[:, 2] = 1 - x[:, 2]
    write_video(path, x, 8.0)
    return x


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("ui_clips")
    _tiny(d / "tiny.npz")
    _tiny(d / "tiny.mp4")
    return d


# ------------------------------------------------------------------------------ jobs


def test_progress_listener_sees_every_step():
    seen = []
    with progress_listener(lambda done, total, desc: seen.append((done, total, desc))):
        with progress(3, "job", quiet=True) as step:
            for _ in range(3):
                step()
    assert seen == [(0, 3, "job"), (1, 3, "job"), (2, 3, "job"), (3, 3, "job")]
    with progress(2, "after", quiet=True) as step:  # the listener is gone after its block
        step()
    assert len(seen) == 4


def test_error_line_is_the_cli_line():
    assert error_line(UserError("bad spec")) == "vidrestore: error: bad spec"
    assert error_line(FileNotFoundError(2, "No such file or directory", "x.mp4")) == "vidrestore: error: No such file or directory: x.mp4"
    assert error_line(RuntimeError("bug")) is None


def test_presets_parse_and_methods_cover_restore():
    from vidrestore.ops import parse
    from vidrestore.workflows.methods import METHODS

    for spec, sigma in TASK_PRESETS.values():
        parse(spec, num_frames=16)
        assert 0 <= sigma < 1
    assert set(METHODS) < set(UI_METHODS) and {"pvdnet", "lgcvd-predict", "lgcvd-interpolate"} <= set(UI_METHODS)


def test_run_job_degrades_restores_and_scores(clips, tmp_path):
    steps = []
    with progress_listener(lambda done, total, desc: steps.append((done, total))):
        r = run_job(clips / "tiny.npz", tmp_path / "job", method="cg", op="blur:gauss:1", simulate=True, steps=10)
    assert steps[0] == (0, 10) and steps[-1][0] >= 1 and all(t == 10 for _, t in steps)
    out, _ = read_video(r["output"])
    assert out.shape == (1, 3, 4, 32, 32) and r["frames"] == 4
    assert read_video(r["input_video"])[0].shape == out.shape
    assert Path(r["comparison"]).stat().st_size > 0 and Path(r["psnr_plot"]).stat().st_size > 0
    m = r["metrics"]
    assert m["restored"]["psnr"] > m["input"]["psnr"] + 3  # CG undoes most of the blur
    assert len(m["restored"]["per_frame"]) == 4 and "PSNR" in r["summary"]


def test_run_job_restores_as_is_with_ground_truth(clips, tmp_path):
    from vidrestore.workflows import degrade_file

    y = tmp_path / "y.npz"
    degrade_file(clips / "tiny.npz", y, op="sr:2")
    # The sidecar carries the operator; the ground truth gives the PSNR curve.
    r = run_job(y, tmp_path / "job", method="bicubic", gt=clips / "tiny.npz")
    assert read_video(r["output"])[0].shape == (1, 3, 4, 32, 32)
    assert r["metrics"]["restored"]["psnr"] > 20
    # Without a sidecar the operator must be given; the message is the CLI's.
    (tmp_path / "y.npz.json").unlink()
    with pytest.raises(UserError, match="pass --op SPEC"):
        run_job(y, tmp_path / "job2", method="cg")


def test_run_job_user_errors(clips, tmp_path):
    with pytest.raises(UserError, match="unknown blur type 'gaus'"):
        run_job(clips / "tiny.npz", tmp_path / "a", method="cg", op="blur:gaus:1", simulate=True)
    with pytest.raises(UserError, match="unknown method"):
        run_job(clips / "tiny.npz", tmp_path / "b", method="magic", op="id")
    with pytest.raises(UserError, match="colour frames"):  # LGC-VD refuses clips unlike its training data
        run_job(clips / "tiny.npz", tmp_path / "c", method="lgcvd-predict")


def test_estimate_job(clips):
    e = estimate_job(clips / "tiny.mp4", method="svi", op="sr:2")
    assert e["shape"] == (4, 64, 64) and e["steps"] == 20 and e["seconds"] > 1.0
    assert "4 frames of 64x64, 20 steps" in e["text"]
    cg = estimate_job(clips / "tiny.npz", method="cg", op="blur:gauss:1", simulate=True, steps=5)
    assert cg["steps"] == 5 and cg["seconds"] < e["seconds"]
    assert estimate_job(clips / "tiny.npz", method="lgcvd-interpolate", amount=3)["shape"] == (10, 32, 32)
    with pytest.raises(UserError, match="no operator"):
        estimate_job(clips / "tiny.mp4", method="cg", op=" ")


def test_restore_for_api_keeps_the_frame_count(clips, tmp_path):
    out = restore_for_api(clips / "tiny.mp4", "blur:gauss:1", "cg", tmp_path)
    assert out.suffix == ".mp4" and read_video(out)[0].shape == (1, 3, 4, 32, 32)


def test_cli_ui_help():
    r = CliRunner().invoke(cli, ["ui", "--help"])
    assert r.exit_code == 0 and "--port" in r.output and "gradio_client" in r.output


def test_cli_ui_without_gradio_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the extra were not installed
    r = CliRunner().invoke(cli, ["ui", "--port", "7999"])
    assert r.exit_code == 2 and "vidrestore: error: the web app needs Gradio: pip install 'vidrestore[ui]'" in r.output


# ------------------------------------------------------------------------------ the running app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from vidrestore.ui import serve

    port = _free_port()
    app = serve("127.0.0.1", port, job_root=tmp_path_factory.mktemp("ui_jobs"), block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_api_restore_returns_a_playable_video(app_url, clips):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    assert "/restore" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    out = client.predict(handle_file(str(clips / "tiny.mp4")), "blur:gauss:1", "cg", api_name="/restore")
    video, _ = read_video(out)  # decodes: an H.264 .mp4 with the input's frame count
    assert Path(out).suffix == ".mp4" and video.shape == (1, 3, 4, 32, 32)
    with pytest.raises(Exception, match="vidrestore: error: bad operator token 'blur:gaus:1'"):  # the CLI's line
        client.predict(handle_file(str(clips / "tiny.mp4")), "blur:gaus:1", "cg", api_name="/restore")


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium: install the Debian packages chromium and chromium-driver (.ci/run does)")
def test_browser_upload_run_cg_shows_the_output(app_url, clips):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1800"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        wait = WebDriverWait(driver, 180, poll_frequency=0.25)  # generous for a busy CI machine; seconds at rest
        driver.get(app_url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#clip input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#clip input[type=file]").send_keys(str(clips / "tiny.mp4"))
        # The file list shows the name and the extension in separate elements ("tiny\n.mp4").
        wait.until(lambda d: "tiny.mp4" in d.find_element(By.ID, "clip").text.replace("\n", ""))
        spec = driver.find_element(By.CSS_SELECTOR, "#op textarea, #op input")
        spec.clear()
        spec.send_keys("blur:gauss:1")
        wait.until(lambda d: "4 frames of 32x32" in d.find_element(By.ID, "estimate").text)
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-out video[src]"))
        wait.until(lambda d: "4 frames of 32x32" in d.find_element(By.ID, "summary").text)
        # The browser decodes the restored video: metadata loaded, positive duration.
        state = None
        for _ in range(80):
            state = driver.execute_script("const v = document.querySelector('#video-out video'); return [v.readyState, v.duration, v.error && v.error.code];")
            if state[0] >= 1 and state[1] > 0:
                break
            time.sleep(0.25)
        assert state[0] >= 1 and state[1] > 0 and state[2] is None, state
        assert driver.find_elements(By.CSS_SELECTOR, "#video-in video[src]")
        download = driver.find_element(By.ID, "download").text
        assert "restored" in download and ".mp4" in download, download
        # A mistake shows the CLI's one line.
        spec.clear()
        spec.send_keys("blur:gaus:1")
        line = "vidrestore: error: bad operator token 'blur:gaus:1'"
        wait.until(lambda d: line in d.find_element(By.ID, "estimate").text)  # the estimate already says so
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").text.count(line) >= 2)  # and so does the job's error
    finally:
        driver.quit()
