import json

from vidrestore.workflows.demo import run_demo


def test_demo_small(tmp_path):
    logs = []
    s = run_demo(tmp_path, frames=8, resize=None, crop=(64, 96), quiet=True, log=logs.append)
    for name in ["restored.mp4", "comparison.png", "psnr_per_frame.png", "metrics.json", "degraded.npz", "degraded.npz.json", "gt.npz"]:
        assert (tmp_path / name).stat().st_size > 0, name
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["psnr_gain_db"] > 3  # real restoration gain on real frames
    assert set(m["methods"]) == {"degraded", "cg", "svi"}
    assert m["methods"]["svi"]["psnr"] > m["methods"]["degraded"]["psnr"] + 3  # SVI with the bundled prior restores too
    assert m["methods"][m["best"]]["psnr"] >= m["methods"]["cg"]["psnr"]
    assert any("PSNR gain" in line for line in logs)
    assert s["op"] == "tblur:uniform:7:circular,sr:4"
