"""ImageCropDataset: recursive scan, video frames, large-image scales, hold-out patterns."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vidrestore.data.images import DEFAULT_HOLDOUT, ImageCropDataset, list_media
from vidrestore.errors import UserError


def _write_video(path, frames):
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_scan_scales_videos_holdout(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    Image.fromarray(rng.integers(0, 255, (200, 1601, 3), dtype=np.uint8)).save(tmp_path / "sub" / "wide.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "small.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / ".hidden" / "x.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "chelsea.png")
    frames = [np.full((48, 64, 3), 20 * i, dtype=np.uint8) for i in range(9)]
    _write_video(tmp_path / "clip.mp4", frames)
    _write_video(tmp_path / "bikes.mp4", frames)
    _write_video(tmp_path / "clip_distorted.mp4", frames)
    (tmp_path / "notes.txt").write_text("ignored")

    assert "chelsea.png" in DEFAULT_HOLDOUT
    names = [p.name for p in list_media(tmp_path, holdout=DEFAULT_HOLDOUT, exclude=("*_distorted.*",))]
    assert names == ["clip.mp4", "small.jpg", "wide.png"]

    ds = ImageCropDataset(tmp_path, 32, seed=0)
    by_file = {}
    for src, arr in zip(ds.sources, ds.arrays):
        by_file.setdefault(src.path.rsplit("/", 1)[-1], []).append((src.index, arr.shape))
    assert by_file["wide.png"] == [(2, (100, 800, 3)), (4, (50, 400, 3))]
    assert [i for i, _ in by_file["clip.mp4"]] == [0, 4, 8]  # every 4th frame
    assert by_file["small.jpg"] == [(1, (40, 50, 3))]
    assert np.isclose(ds.probs.sum(), 1.0)
    b = ds.batch(0, 8)
    assert b.shape == (8, 3, 32, 32) and b.dtype == torch.float32
    assert torch.equal(b, ImageCropDataset(tmp_path, 32, seed=0).batch(0, 8))
    assert not torch.equal(b, ImageCropDataset(tmp_path, 32, seed=1).batch(0, 8))


def test_errors(tmp_path):
    with pytest.raises(UserError):
        ImageCropDataset(tmp_path / "missing", 16)
    with pytest.raises(UserError, match="no images"):
        ImageCropDataset(tmp_path, 16)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="at least"):
        ImageCropDataset(tmp_path, 16)
