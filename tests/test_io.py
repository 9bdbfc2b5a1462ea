"""Tests for vidrestore.io: video read/write round trips, selection, atomicity, sidecars."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import vidrestore.io.video as video_mod
from vidrestore.errors import UserError
from vidrestore.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    read_sidecar,
    read_video,
    sidecar_path,
    write_sidecar,
    write_video,
)


def smooth_clip(t: int = 6, h: int = 64, w: int = 96, c: int = 3) -> torch.Tensor:
    """A smooth moving RGB pattern, (1, C, T, H, W) in [0.1, 0.9]."""
    tt = torch.arange(t, dtype=torch.float64)[:, None, None]
    yy = torch.linspace(0, 1, h, dtype=torch.float64)[None, :, None]
    xx = torch.linspace(0, 1, w, dtype=torch.float64)[None, None, :]
    r = 0.5 + 0.3 * torch.sin(2 * math.pi * xx + 0.3 * tt) * torch.ones_like(yy)
    g = 0.1 + 0.8 * yy * torch.ones_like(xx) + 0 * tt
    b = 0.5 + 0.2 * torch.cos(2 * math.pi * (xx + yy) - 0.2 * tt)
    video = torch.stack([r, g, b])[:c].float()
    return video.unsqueeze(0).clamp(0, 1)


def quantized(video: torch.Tensor) -> torch.Tensor:
    return torch.round(video.clamp(0, 1) * 255) / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / torch.mean((a.double() - b.double()) ** 2)))


def indexed_clip(t: int = 10, h: int = 8, w: int = 12) -> torch.Tensor:
    """Frame k is constant (k+1)*20/255 (8-bit exact), with a horizontal ramp in channel 1."""
    v = torch.zeros(1, 3, t, h, w)
    for k in range(t):
        v[0, :, k] = (k + 1) * 20 / 255
    v[0, 1] = torch.round(torch.linspace(0, 1, w) * 255).div(255).expand(t, h, w)
    return v


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# ----------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------


def test_npz_round_trip_exact_with_fps(tmp_path):
    v = torch.randn(1, 3, 4, 5, 7) * 2  # values far outside [0, 1], negatives included
    out = write_video(tmp_path / "y.npz", v, fps=12.5)
    assert out == tmp_path / "y.npz"
    with np.load(out) as z:
        assert z["video"].shape == (3, 4, 5, 7) and z["video"].dtype == np.float32
        assert float(z["fps"]) == 12.5
    r, fps = read_video(out)
    assert r.dtype == torch.float32 and r.shape == (1, 3, 4, 5, 7)
    assert torch.equal(r, v)
    assert fps == 12.5


def test_npy_round_trip_exact(tmp_path):
    v = torch.randn(3, 5, 4, 6)  # (C, T, H, W) accepted too
    write_video(tmp_path / "y.npy", v)
    assert np.load(tmp_path / "y.npy").shape == (3, 5, 4, 6)
    r, fps = read_video(tmp_path / "y.npy")
    assert torch.equal(r[0], v)
    assert fps == 25.0


def test_png_folder_8bit_and_16bit(tmp_path):
    v = smooth_clip(3, 9, 11)
    write_video(tmp_path / "frames", v)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    r, fps = read_video(tmp_path / "frames")
    assert fps == 25.0
    assert (r - v).abs().max() <= 0.5 / 255 + 1e-6

    write_video(str(tmp_path / "deep") + "/", v, bit_depth=16)
    img = cv2.imread(str(tmp_path / "deep" / "frame_00000.png"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16
    r16, _ = read_video(tmp_path / "deep")
    assert (r16 - v).abs().max() <= 0.5 / 65535 + 1e-6


def test_png_folder_gray_is_replicated(tmp_path):
    v = smooth_clip(2, 6, 5, c=1)
    write_video(tmp_path / "gray", v)
    img = cv2.imread(str(tmp_path / "gray" / "frame_00001.png"), cv2.IMREAD_UNCHANGED)
    assert img.ndim == 2
    r, _ = read_video(tmp_path / "gray")
    assert r.shape == (1, 3, 2, 6, 5)
    assert torch.equal(r[:, 0], r[:, 1]) and torch.equal(r[:, 0], r[:, 2])
    assert (r[:, 0] - v[:, 0]).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("name", ["y.mkv", "y.avi"])
def test_ffv1_lossless_exact(tmp_path, name):
    v = quantized(smooth_clip(4, 15, 21))  # odd sizes are fine for RGB FFV1
    write_video(tmp_path / name, v, fps=24)
    with av.open(str(tmp_path / name)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    r, fps = read_video(tmp_path / name)
    assert torch.equal(r, v)
    assert fps == pytest.approx(24.0)


def test_h264_mp4_quality_and_fps(tmp_path):
    v = smooth_clip(6, 64, 96)
    write_video(tmp_path / "y.mp4", v, fps=30)
    with av.open(str(tmp_path / "y.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    r, fps = read_video(tmp_path / "y.mp4")
    assert r.shape == v.shape
    assert psnr(r, v) > 35.0
    assert fps == pytest.approx(30.0)

    write_video(tmp_path / "ntsc.mov", v, fps=30000 / 1001)
    _, fps = read_video(tmp_path / "ntsc.mov")
    assert fps == pytest.approx(30000 / 1001, rel=1e-6)


def test_h264_odd_size_kept_with_yuv444(tmp_path):
    v = smooth_clip(3, 33, 49)
    write_video(tmp_path / "odd.mp4", v)
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    r, _ = read_video(tmp_path / "odd.mp4")
    assert r.shape == (1, 3, 3, 33, 49)
    assert psnr(r, v) > 35.0


def test_h264_lossless_exact(tmp_path):
    v = quantized(smooth_clip(3, 10, 14))
    write_video(tmp_path / "y.mp4", v, codec="h264-lossless")
    r, _ = read_video(tmp_path / "y.mp4")
    assert torch.equal(r, v)


def test_gif_round_trip_keeps_frames_and_fps(tmp_path):
    v = smooth_clip(5, 16, 20)
    v[:, :, 2] = v[:, :, 1]  # a repeated frame must not be merged away
    write_video(tmp_path / "y.gif", v, fps=25)
    r, fps = read_video(tmp_path / "y.gif")
    assert r.shape == v.shape
    assert fps == pytest.approx(25.0)
    # 256-colour palettes: small mean error, bounded worst case
    assert (r - v).abs().mean() < 0.02
    assert (r - v).abs().max() < 0.15
    assert torch.equal(r[:, :, 2], r[:, :, 1])


def test_values_clipped_for_8bit_formats(tmp_path):
    v = torch.full((1, 3, 2, 4, 4), 0.5)
    v[..., 0, 0] = 1.7
    v[..., 0, 1] = -0.4
    write_video(tmp_path / "c.mkv", v)
    r, _ = read_video(tmp_path / "c.mkv")
    assert torch.all(r[..., 0, 0] == 1.0) and torch.all(r[..., 0, 1] == 0.0)


# ----------------------------------------------------------------------------------------
# reading: order, selection, layouts
# ----------------------------------------------------------------------------------------


def test_frame_folder_natural_order(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for k in [1, 2, 10, 3, 11, 20]:
        cv2.imwrite(str(folder / f"frame{k}.png"), np.full((4, 5), k, np.uint8))
    (folder / "notes.txt").write_text("ignored")
    cv2.imwrite(str(folder / ".hidden.png"), np.zeros((4, 5), np.uint8))
    r, fps = read_video(folder)
    assert fps == 25.0
    values = [round(float(x) * 255) for x in r[0, 0, :, 0, 0]]
    assert values == [1, 2, 3, 10, 11, 20]


def test_selection_on_arrays(tmp_path):
    v = indexed_clip(10)
    write_video(tmp_path / "v.npz", v)
    r, _ = read_video(tmp_path / "v.npz", start=2, frames=3, step=2)
    assert r.shape == (1, 3, 3, 8, 12)
    assert torch.equal(r, v[:, :, 2:7:2])
    r, _ = read_video(tmp_path / "v.npz", start=7)
    assert torch.equal(r, v[:, :, 7:])
    r, _ = read_video(tmp_path / "v.npz", start=1, step=3, max_frames=2)
    assert torch.equal(r, v[:, :, 1:5:3])
    r, _ = read_video(tmp_path / "v.npz", max_frames=100)  # a cap, not a demand
    assert r.shape[2] == 10


@pytest.mark.parametrize("name", ["v.mkv", "frames"])
def test_selection_on_videos_and_folders(tmp_path, name):
    v = indexed_clip(10)
    write_video(tmp_path / name, v)
    r, _ = read_video(tmp_path / name, start=3, frames=3, step=2)
    assert torch.equal(r, v[:, :, 3:9:2])
    r, _ = read_video(tmp_path / name, start=8)
    assert torch.equal(r, v[:, :, 8:])


def test_video_decode_converts_only_needed_frames(tmp_path, monkeypatch):
    v = indexed_clip(10)
    write_video(tmp_path / "v.mkv", v)
    calls = []
    original = video_mod._av_to_ndarray
    monkeypatch.setattr(video_mod, "_av_to_ndarray", lambda f: calls.append(1) or original(f))
    r, _ = read_video(tmp_path / "v.mkv", start=1, frames=2, step=3)
    assert torch.equal(r, v[:, :, [1, 4]])
    assert len(calls) == 2


def test_crop_and_resize(tmp_path):
    v = smooth_clip(2, 16, 24)
    write_video(tmp_path / "v.npy", v)
    r, _ = read_video(tmp_path / "v.npy", crop=(8, 10))
    assert r.shape == (1, 3, 2, 8, 10)
    assert torch.equal(r, v[..., 4:12, 7:17])
    r, _ = read_video(tmp_path / "v.npy", crop=6)
    assert torch.equal(r, v[..., 5:11, 9:15])

    # shrinking by 2 uses area interpolation: each output pixel is a 2x2 block mean
    r, _ = read_video(tmp_path / "v.npy", resize=(8, 12))
    blocks = v.reshape(1, 3, 2, 8, 2, 12, 2).mean(dim=(4, 6))
    assert torch.allclose(r, blocks, atol=1e-5)
    # enlarging (bicubic) a constant frame keeps it constant; resize then crop
    const = torch.full((1, 3, 2, 4, 6), 0.25)
    write_video(tmp_path / "c.npz", const)
    r, _ = read_video(tmp_path / "c.npz", resize=(10, 14), crop=(6, 6))
    assert r.shape == (1, 3, 2, 6, 6)
    assert torch.allclose(r, torch.full_like(r, 0.25), atol=1e-5)


def test_resize_clips_integer_sources_only(tmp_path):
    checker = (np.indices((6, 6)).sum(0) % 2 * 255).astype(np.uint8)  # bicubic overshoots
    np.save(tmp_path / "u8.npy", np.stack([checker] * 2))  # (T, H, W) uint8
    r, _ = read_video(tmp_path / "u8.npy", resize=(15, 15))
    assert r.min() >= 0.0 and r.max() <= 1.0
    np.save(tmp_path / "f.npy", np.stack([checker] * 2).astype(np.float32) / 255)
    r, _ = read_video(tmp_path / "f.npy", resize=(15, 15))
    assert r.min() < 0.0 and r.max() > 1.0  # float data are not clipped


def test_array_layouts_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    thwc = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    expected = torch.from_numpy(thwc.transpose(3, 0, 1, 2).astype(np.float32) / 255)[None]
    np.save(tmp_path / "thwc.npy", thwc)
    np.save(tmp_path / "ctwh.npy", np.ascontiguousarray(thwc.transpose(3, 0, 1, 2)))
    np.save(tmp_path / "b.npy", thwc.transpose(3, 0, 1, 2)[None])
    for name in ["thwc.npy", "ctwh.npy", "b.npy"]:
        r, _ = read_video(tmp_path / name)
        assert torch.allclose(r, expected), name

    gray16 = rng.integers(0, 65536, (2, 3, 4), dtype=np.uint16)
    np.savez(tmp_path / "g.npz", frames=gray16, fps=np.float64(8))
    r, fps = read_video(tmp_path / "g.npz")
    assert fps == 8.0 and r.shape == (1, 3, 2, 3, 4)
    assert torch.allclose(r[0, 2], torch.from_numpy(gray16.astype(np.float32) / 65535))

    np.savez(tmp_path / "k.npz", video=np.zeros((2, 3, 4), np.float64), other=np.ones(3))
    r, _ = read_video(tmp_path / "k.npz")
    assert r.dtype == torch.float32 and r.shape == (1, 3, 2, 3, 4)


# ----------------------------------------------------------------------------------------
# atomicity
# ----------------------------------------------------------------------------------------


def _failing_after(n: int, real):
    state = {"calls": 0}

    def wrapper(*args, **kwargs):
        state["calls"] += 1
        if state["calls"] > n:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("name", ["y.mp4", "y.mkv", "y.gif"])
def test_crash_mid_encode_leaves_nothing(tmp_path, monkeypatch, name):
    target = tmp_path / "sub" / name
    monkeypatch.setattr(video_mod, "_make_av_frame", _failing_after(2, video_mod._make_av_frame))
    monkeypatch.setattr(video_mod, "_make_gif_frame", _failing_after(2, video_mod._make_gif_frame))
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_video(target, smooth_clip(5, 8, 8))
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_crash_keeps_existing_file_untouched(tmp_path, monkeypatch):
    target = tmp_path / "y.mkv"
    first = quantized(smooth_clip(3, 8, 10))
    write_video(target, first)
    before = target.read_bytes()
    monkeypatch.setattr(video_mod, "_make_av_frame", _failing_after(1, video_mod._make_av_frame))
    with pytest.raises(RuntimeError):
        write_video(target, torch.zeros(1, 3, 4, 8, 10))
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []
    r, _ = read_video(target)
    assert torch.equal(r, first)


def test_crash_keeps_existing_folder_and_npz(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    first = quantized(smooth_clip(3, 6, 7))
    write_video(folder, first)
    monkeypatch.setattr(video_mod, "_encode_png", _failing_after(1, video_mod._encode_png))
    with pytest.raises(RuntimeError):
        write_video(folder, torch.zeros(1, 3, 5, 6, 7))
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:05d}.png" for i in range(3)]
    assert torch.equal(read_video(folder)[0], first)

    write_video(tmp_path / "y.npz", first)
    monkeypatch.setattr(video_mod.np, "savez", _failing_after(0, np.savez))
    with pytest.raises(RuntimeError):
        write_video(tmp_path / "y.npz", torch.zeros(1, 3, 1, 2, 2))
    monkeypatch.undo()
    assert torch.equal(read_video(tmp_path / "y.npz")[0], first)
    assert leftovers(tmp_path) == []


def test_folder_overwrite_replaces_all_frames(tmp_path):
    folder = tmp_path / "frames"
    write_video(folder, torch.zeros(1, 3, 5, 4, 4))
    write_video(folder, torch.ones(1, 3, 2, 4, 4))
    assert sorted(p.name for p in folder.iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert leftovers(tmp_path) == []
    (folder / "keep.txt").write_text("user data")
    with pytest.raises(UserError, match="frames"):
        write_video(folder, torch.ones(1, 3, 1, 4, 4))
    assert (folder / "keep.txt").exists()


def test_atomic_path_helpers(tmp_path):
    target = tmp_path / "a" / "b.txt"
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".b.txt.tmp-")
            tmp.write_text("partial")
            raise KeyError("boom")
    assert list(target.parent.iterdir()) == []
    atomic_write_text(target, "hello")
    atomic_write_bytes(tmp_path / "c.bin", b"\x00\x01")
    assert target.read_text() == "hello" and (tmp_path / "c.bin").read_bytes() == b"\x00\x01"

    with atomic_path(tmp_path / "d", is_dir=True) as tmp:
        assert tmp.is_dir()
        (tmp / "x").write_text("1")
    with atomic_path(tmp_path / "d", is_dir=True) as tmp:
        (tmp / "y").write_text("2")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["y"]
    assert leftovers(tmp_path) == []
    with pytest.raises(UserError, match="d"):
        with atomic_path(tmp_path / "d"):
            pass


# ----------------------------------------------------------------------------------------
# user errors
# ----------------------------------------------------------------------------------------


def _assert_user_error(func, fragment: str, *args, **kwargs):
    with pytest.raises(UserError) as info:
        func(*args, **kwargs)
    assert fragment in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_read_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.mp4"
    _assert_user_error(read_video, "missing.mp4", missing)

    (tmp_path / "clip.xyz").write_bytes(b"data")
    _assert_user_error(read_video, "clip.xyz", tmp_path / "clip.xyz")

    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_user_error(read_video, "empty.mp4", tmp_path / "empty.mp4")

    (tmp_path / "junk.mkv").write_bytes(np.random.default_rng(1).bytes(4000))
    _assert_user_error(read_video, "junk.mkv", tmp_path / "junk.mkv")

    (tmp_path / "emptydir").mkdir()
    _assert_user_error(read_video, "emptydir", tmp_path / "emptydir")

    bad = tmp_path / "badframes"
    bad.mkdir()
    cv2.imwrite(str(bad / "f1.png"), np.zeros((4, 4), np.uint8))
    (bad / "f2.png").write_bytes(b"not a png")
    _assert_user_error(read_video, "f2.png", bad)

    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    _assert_user_error(read_video, "broken.npz", tmp_path / "broken.npz")


def test_range_errors(tmp_path):
    v = indexed_clip(4)
    for name in ["r.mkv", "r.npz", "rframes"]:
        write_video(tmp_path / name, v)
        _assert_user_error(read_video, name, tmp_path / name, start=4)
        _assert_user_error(read_video, name, tmp_path / name, start=1, frames=4)
        _assert_user_error(read_video, name, tmp_path / name, frames=0)
        _assert_user_error(read_video, name, tmp_path / name, crop=(9, 4))
    _assert_user_error(read_video, "step for", tmp_path / "r.npz", step=0)
    _assert_user_error(read_video, "r.npz", tmp_path / "r.npz", resize=(0, 4))
    _assert_user_error(read_video, "r.npz", tmp_path / "r.npz", start=-1)
    _assert_user_error(read_video, "r.npz", tmp_path / "r.npz", max_frames=0)


def test_array_content_errors(tmp_path):
    nan = np.zeros((2, 3, 4), np.float32)
    nan[1, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    _assert_user_error(read_video, "nan.npy", tmp_path / "nan.npy")
    inf = np.zeros((2, 3, 4), np.float32)
    inf[0, 1, 1] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    _assert_user_error(read_video, "inf.npy", tmp_path / "inf.npy")
    np.save(tmp_path / "amb.npy", np.zeros((2, 3, 4, 5), np.float32))
    _assert_user_error(read_video, "amb.npy", tmp_path / "amb.npy")
    np.save(tmp_path / "i32.npy", np.zeros((2, 3, 4), np.int32))
    _assert_user_error(read_video, "i32.npy", tmp_path / "i32.npy")
    np.save(tmp_path / "zero.npy", np.zeros((0, 3, 4), np.float32))
    _assert_user_error(read_video, "zero.npy", tmp_path / "zero.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3, 4)), b=np.zeros((2, 3, 4)))
    _assert_user_error(read_video, "two.npz", tmp_path / "two.npz")


def test_write_errors(tmp_path):
    good = torch.zeros(1, 3, 2, 4, 4)
    _assert_user_error(write_video, "y.xyz", tmp_path / "y.xyz", good)
    bad = good.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", bad)
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", torch.zeros(2, 3, 2, 4, 4))
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", torch.zeros(1, 2, 2, 4, 4))
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", torch.zeros(1, 3, 2, 4, 4, dtype=torch.uint8))
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", good, fps=0)
    _assert_user_error(write_video, "y.mp4", tmp_path / "y.mp4", good, codec="ffv1")
    _assert_user_error(write_video, "y.gif", tmp_path / "y.gif", good, bit_depth=16)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------
# sidecars and layering
# ----------------------------------------------------------------------------------------


def test_sidecar_round_trip(tmp_path):
    assert sidecar_path("y.npz") == Path("y.npz.json")
    assert sidecar_path("out/y/") == Path("out/y.json")
    assert sidecar_path(tmp_path / "y") == tmp_path / "y.json"
    target = tmp_path / "y.npz"
    assert read_sidecar(target) is None
    meta = {"sigma": np.float32(0.25), "op": "blur", "path": tmp_path, "shape": (1, 3)}
    written = write_sidecar(target, meta)
    assert written == tmp_path / "y.npz.json"
    text = written.read_text()
    assert text.index('"op"') < text.index('"path"') < text.index('"shape"') < text.index('"sigma"')
    assert json.loads(text) == read_sidecar(target)
    assert read_sidecar(target) == {"sigma": 0.25, "op": "blur", "path": str(tmp_path), "shape": [1, 3]}
    written.write_text("{not json")
    _assert_user_error(read_sidecar, "y.npz.json", target)
    written.write_text("[1, 2]")
    _assert_user_error(read_sidecar, "y.npz.json", target)


def test_io_layering():
    allowed = {"errors", "tensor", "linalg", "io"}
    root = Path(video_mod.__file__).parent
    for file in root.glob("*.py"):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 2:
                    assert (node.module or "").split(".")[0] in allowed, (file.name, node.module)
                if node.module and node.module.startswith("vidrestore."):
                    assert node.module.split(".")[1] in allowed, (file.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("vidrestore."):
                        assert alias.name.split(".")[1] in allowed, (file.name, alias.name)


def test_npz_key_picks_an_array_of_a_multi_array_file(tmp_path):
    """A multi-array .npz is read with key=...; without it the error names the arrays and --key."""
    import numpy as np
    from click.testing import CliRunner

    from vidrestore.cli.main import cli
    from vidrestore.errors import UserError

    a = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    b = np.random.default_rng(1).random((4, 8, 8, 3)).astype(np.float32)
    p = tmp_path / "multi.npz"
    np.savez(p, clean=a, noisy=b)
    with pytest.raises(UserError, match="pick one with --key"):
        read_video(p)
    x, _ = read_video(p, key="noisy")
    assert torch.allclose(x[0].permute(1, 2, 3, 0), torch.from_numpy(b))
    with pytest.raises(UserError, match="has no array 'x'; it holds clean, noisy"):
        read_video(p, key="x")
    r = CliRunner().invoke(cli, ["degrade", str(p), "--key", "clean", "-o", str(tmp_path / "y.npz"), "--op", "sr:2"])
    assert r.exit_code == 0, r.output
    assert read_video(tmp_path / "y.npz")[0].shape == (1, 3, 4, 4, 4)
