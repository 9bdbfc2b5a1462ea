"""Reading and writing videos as ``(1, C, T, H, W)`` float32 tensors in ``[0, 1]``.

Supported sources for :func:`read_video`:

* video files (``.mp4 .avi .mkv .mov .mpg .mpeg .webm .gif``), decoded with PyAV;
* frame folders of ``.png .jpg .jpeg .bmp .tif .tiff`` images, in natural order
  (``frame2`` before ``frame10``);
* ``.npy`` / ``.npz`` arrays (exact floats, see :func:`read_video` for the layout rules).

:func:`write_video` picks the format from the path suffix and always writes atomically
(see :mod:`vidrestore.io.atomic`).
"""

from __future__ import annotations

from contextlib import contextmanager

import math
import os
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from ..errors import UserError, warn
from .atomic import atomic_path

__all__ = [
    "ARRAY_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "check_output",
    "read_video",
    "write_video",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})

DEFAULT_FPS = 25.0
WRITE_CODECS = ("h264", "h264-lossless", "ffv1")

_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


# --------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_count(value: object, name: str, minimum: int, path: object) -> int:
    if not _is_int(value) or int(value) < minimum:
        raise UserError(f"{name} for {path} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_size(value: object, name: str, path: object, *, allow_int: bool) -> tuple[int, int] | None:
    """Validate an ``(H, W)`` pair of positive ints (or one int for a square if allowed)."""
    if value is None:
        return None
    if allow_int and _is_int(value):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(_is_int(v) and int(v) > 0 for v in value)
    ):
        raise UserError(f"{name} for {path} must be a pair (H, W) of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (``f2`` < ``f10``)."""
    return [(0, int(tok), tok) if tok.isdigit() else (1, 0, tok.lower()) for tok in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------
# per-frame processing shared by all sources
# --------------------------------------------------------------------------------------


class _FrameProcessor:
    """Converts raw ``(H, W[, C])`` frames to float32 ``(H, W, C)`` with resize and crop.

    Args:
        path: Source path, used in error messages.
        resize: Optional ``(H, W)`` output size of the resize step.
        crop: Optional ``(H, W)`` centre crop applied after resizing.
    """

    def __init__(self, path: Path, resize: tuple[int, int] | None, crop: tuple[int, int] | None):
        self.path = path
        self.resize = resize
        self.crop = crop
        self.shape: tuple[int, int] | None = None  # raw (H, W) of the first frame

    def __call__(self, raw: np.ndarray, where: object = None) -> np.ndarray:
        """Process one raw frame (uint8, uint16 or floating) into float32 ``(h, w, C)``."""
        where = where if where is not None else self.path
        if raw.ndim == 2:
            raw = raw[:, :, None]
        if raw.ndim != 3 or raw.shape[2] not in (1, 3):
            raise UserError(f"unsupported frame shape {tuple(raw.shape)} in {where}")
        if self.shape is None:
            self.shape = raw.shape[:2]
        elif raw.shape[:2] != self.shape:
            raise UserError(
                f"frame size {raw.shape[:2]} in {where} differs from the first frame {self.shape}"
            )
        frame, integer = _to_float(raw, where)
        if self.resize is not None and self.resize != frame.shape[:2]:
            h, w = self.resize
            shrink = h <= frame.shape[0] and w <= frame.shape[1]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
            channels = frame.shape[2]
            frame = cv2.resize(frame, (w, h), interpolation=interp).reshape(h, w, channels)
            if integer:
                np.clip(frame, 0.0, 1.0, out=frame)
        if self.crop is not None:
            ch, cw = self.crop
            h, w = frame.shape[:2]
            if ch > h or cw > w:
                raise UserError(f"crop {self.crop} is larger than the frame size {(h, w)} of {self.path}")
            top, left = (h - ch) // 2, (w - cw) // 2
            frame = frame[top : top + ch, left : left + cw]
        return np.ascontiguousarray(frame, dtype=np.float32)


def _to_float(raw: np.ndarray, where: object) -> tuple[np.ndarray, bool]:
    """Scale a raw array to float32 (uint8 /255, uint16 /65535, floats kept, finite check).

    Returns:
        The float32 array and whether the source was an integer type.
    """
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / np.float32(255.0), True
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / np.float32(65535.0), True
    if np.issubdtype(raw.dtype, np.floating):
        out = np.asarray(raw, dtype=np.float32)
        if not np.isfinite(out).all():
            raise UserError(f"{where} contains NaN or infinite values")
        return out, False
    raise UserError(f"unsupported data type {raw.dtype} in {where} (use uint8, uint16 or float)")


def _finish(frames: list[np.ndarray]) -> torch.Tensor:
    """Stack processed ``(H, W, C)`` frames into a ``(1, 3, T, H, W)`` float32 tensor."""
    video = torch.from_numpy(np.stack(frames, axis=0))  # (T, H, W, C)
    video = video.permute(3, 0, 1, 2).unsqueeze(0)  # (1, C, T, H, W)
    if video.shape[1] == 1:
        video = video.expand(-1, 3, -1, -1, -1)
    return video.contiguous()


def _plan(frames: int | None, max_frames: int | None) -> int | None:
    """Number of frames to return (``None``: all remaining)."""
    limits = [n for n in (frames, max_frames) if n is not None]
    return min(limits) if limits else None


def _check_range(path: Path, total: int, start: int, step: int, frames: int | None, got: int) -> None:
    """Raise :class:`UserError` if ``start`` is past the end or too few frames exist."""
    if total == 0:
        raise UserError(f"{path} contains no video frames")
    if start >= total:
        raise UserError(f"start={start} is beyond the end of {path} ({total} frames)")
    if frames is not None and got < frames:
        raise UserError(
            f"requested frames={frames} (start={start}, step={step}) but {path} has only "
            f"{total} frames, giving {got}"
        )


# --------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------


def _declared_frames(container, stream, fps: float) -> tuple[int | None, bool]:
    """Frame count the container declares: ``(count, exact)`` from the stream's frame count
    (exact) or else its duration times the frame rate (an estimate); ``(None, False)`` if
    the container declares neither."""
    try:
        if stream.frames and stream.frames > 0:
            return int(stream.frames), True
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000
        else:
            return None, False
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None, False
    if not (math.isfinite(seconds) and seconds > 0):
        return None, False
    return int(round(seconds * fps)), False


def _short_read(path: Path, seen: int, declared: int, allow: bool, why: str = "") -> None:
    """A container that stops before its declared length: UserError, or a warning if allowed."""
    msg = f"{path} is truncated: decoded {seen} of the {declared} frames its container declares{why}"
    if not allow:
        raise UserError(msg + "; pass --allow-truncated to use the frames that are there")
    warn(msg + "; using the frames that are there")


def _read_av(path: Path, start, step, frames, count, proc, allow_truncated=False) -> tuple[list[np.ndarray], float]:
    """Decode the needed frames of a video file with PyAV (stops after the last needed one).

    When the whole stream is decoded, the number of frames is compared with what the container
    declares (its frame count, else duration x rate, with one frame of slack): a short read
    (a file cut off while copying or writing) is a :class:`UserError` unless
    ``allow_truncated`` (then a warning). A decoding error after some frames counts as a
    short read too.
    """
    out: list[np.ndarray] = []
    seen = 0
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot open video {path}: {exc}") from exc
    try:
        if not container.streams.video:
            raise UserError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        declared, exact = _declared_frames(container, stream, fps)
        try:
            for index, frame in enumerate(container.decode(stream)):
                seen = index + 1
                if index < start or (index - start) % step:
                    continue
                out.append(proc(_av_to_ndarray(frame), f"{path} (frame {index})"))
                if count is not None and len(out) >= count:
                    break
        except (av.FFmpegError, OSError, ValueError) as exc:
            if not seen:
                raise UserError(f"cannot decode video {path}: {exc}") from exc
            _short_read(path, seen, declared if declared and declared > seen else seen + 1, allow_truncated, f" (decoding failed: {exc})")
            declared = None  # already reported
    finally:
        container.close()
    if count is None or len(out) < count:  # the whole stream was decoded
        if declared is not None and seen < (declared if exact else declared - 1):
            _short_read(path, seen, declared, allow_truncated)
        _check_range(path, seen, start, step, frames, len(out))
    return out, fps


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        try:
            value = float(rate) if rate is not None else 0.0
        except (TypeError, ZeroDivisionError):
            continue
        if math.isfinite(value) and value > 0:
            return value
    return DEFAULT_FPS


def _av_to_ndarray(frame) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8, or uint16 for sources deeper than 8 bits."""
    try:
        bits = max(c.bits for c in frame.format.components)
    except (AttributeError, ValueError):
        bits = 8
    if bits > 8:
        return frame.to_ndarray(format="rgb48le")
    return frame.to_ndarray(format="rgb24")


def _read_folder(path: Path, start, step, frames, count, proc) -> tuple[list[np.ndarray], float]:
    files = sorted(
        (
            p
            for p in path.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        ),
        key=lambda p: _natural_key(p.name),
    )
    if not files:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise UserError(f"folder {path} contains no image frames ({exts})")
    chosen = files[start::step]
    if count is not None:
        chosen = chosen[:count]
    _check_range(path, len(files), start, step, frames, len(chosen))
    out = [proc(_read_image(f), f) for f in chosen]
    return out, DEFAULT_FPS


@contextmanager
def _silence_c_stderr():
    """Send file descriptor 2 to /dev/null for the duration (libpng/libjpeg inside OpenCV print
    their own lines for corrupt files; we report those files with one UserError instead)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_image(file: Path) -> np.ndarray:
    """Read one image as RGB ``(H, W, 3)`` or gray ``(H, W)`` (uint8/uint16/float)."""
    try:
        data = np.fromfile(file, dtype=np.uint8)
        with _silence_c_stderr():
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except (OSError, cv2.error) as exc:
        raise UserError(f"cannot read image {file}: {exc}") from exc
    if img is None:
        raise UserError(f"cannot read image {file}: empty or corrupt")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 2:  # gray + alpha
            img = img[:, :, 0]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return img


def _load_array(path: Path, key: str | None = None) -> tuple[np.ndarray, float]:
    """Load the array (memory-mapped for ``.npy``) and its fps from a ``.npy``/``.npz``;
    ``key`` picks the array of a multi-array ``.npz``."""
    fps = DEFAULT_FPS
    try:
        if path.suffix.lower() == ".npy":
            if key is not None:
                raise UserError(f"--key applies to .npz files, not {path}")
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.files)
                if key is not None:
                    if key not in keys:
                        raise UserError(f"{path} has no array {key!r}; it holds {', '.join(keys)}")
                elif "video" in keys:
                    key = "video"
                else:
                    others = [k for k in keys if k != "fps"]
                    if len(others) != 1:
                        raise UserError(
                            f"{path} must hold a 'video' array or exactly one array, found {keys}; pick one with --key"
                        )
                    key = others[0]
                arr = npz[key]
                if "fps" in keys:
                    fps_arr = np.asarray(npz["fps"]).reshape(-1)
                    fps = float(fps_arr[0]) if fps_arr.size == 1 else float("nan")
                    if not (math.isfinite(fps) and fps > 0):
                        raise UserError(f"{path} has an invalid fps entry {npz['fps']!r}")
    except UserError:
        raise
    except Exception as exc:  # numpy raises many types for corrupt files
        raise UserError(f"cannot read array file {path}: {exc}") from exc
    return arr, fps


def _as_thwc(arr: np.ndarray, path: Path) -> np.ndarray:
    """View an array as ``(T, H, W, C)`` following the documented layout rules."""
    shape = tuple(arr.shape)
    if arr.ndim == 5:
        if shape[0] != 1 or shape[1] not in (1, 3):
            raise UserError(f"{path}: 5-D arrays must be (1, C, T, H, W) with C in {{1, 3}}, got {shape}")
        return arr[0].transpose(1, 2, 3, 0)
    if arr.ndim == 4:
        if shape[3] in (1, 3):
            return arr
        if shape[0] in (1, 3):
            return arr.transpose(1, 2, 3, 0)
        raise UserError(f"{path}: 4-D arrays must be (T, H, W, C) or (C, T, H, W) with C in {{1, 3}}, got {shape}")
    if arr.ndim == 3:
        return arr[..., None]
    raise UserError(f"{path}: expected a 3-D, 4-D or 5-D video array, got shape {shape}")


def _read_array(path: Path, start, step, frames, count, proc, key=None) -> tuple[list[np.ndarray], float]:
    arr, fps = _load_array(path, key)
    thwc = _as_thwc(arr, path)
    if min(thwc.shape) == 0:
        raise UserError(f"{path} holds an empty array of shape {tuple(arr.shape)}")
    total = thwc.shape[0]
    indices = list(range(start, total, step))
    if count is not None:
        indices = indices[:count]
    _check_range(path, total, start, step, frames, len(indices))
    out = [proc(np.asarray(thwc[i]), path) for i in indices]
    return out, fps


# --------------------------------------------------------------------------------------
# public: read
# --------------------------------------------------------------------------------------


def read_video(
    path: str | os.PathLike,
    *,
    start: int = 0,
    frames: int | None = None,
    step: int = 1,
    resize: tuple[int, int] | None = None,
    crop: int | tuple[int, int] | None = None,
    max_frames: int | None = None,
    allow_truncated: bool = False,
    key: str | None = None,
) -> tuple[torch.Tensor, float]:
    """Read a video file, frame folder or array file.

    Frame selection: source frames ``start, start+step, start+2*step, ...`` are returned.
    ``frames`` asks for exactly that many (a :class:`UserError` if the source is too short);
    ``max_frames`` is a silent cap; with neither, all remaining frames are read. Video
    files are decoded only up to the last needed frame.

    Array layout rules (``.npy``; ``.npz`` uses key ``video`` if present, else its single
    array, and an optional ``fps`` entry): 5-D ``(1, C, T, H, W)``; 4-D ``(T, H, W, C)`` if
    the last dim is 1 or 3, else ``(C, T, H, W)`` if the first is 1 or 3; 3-D ``(T, H, W)``
    grayscale. ``uint8`` is divided by 255, ``uint16`` by 65535, floating data is kept as
    float32 without clipping (noisy measurements may leave ``[0, 1]``).

    Args:
        path: Video file (.mp4 .avi .mkv .mov .mpg .mpeg .webm .gif), folder of images
            (.png .jpg .jpeg .bmp .tif .tiff, natural order, hidden files ignored), or
            ``.npy`` / ``.npz`` array.
        start: Index of the first source frame (>= 0).
        frames: Exact number of frames to return (>= 1), or ``None``.
        step: Temporal stride (>= 1).
        resize: Optional ``(H, W)``: every frame is resized (area interpolation when
            shrinking, bicubic otherwise; integer sources are clipped to ``[0, 1]``).
        crop: Optional ``(H, W)`` (or one int for a square) centre crop, applied after
            ``resize``; it must fit in the frame.
        max_frames: Optional upper bound on the number of frames returned.
        allow_truncated: Accept a video file that holds fewer frames than its container
            declares (a cut-off copy) with a warning, instead of a :class:`UserError`.
        key: Name of the array to read from a multi-array ``.npz`` (default: ``video``, or
            the only array).

    Returns:
        ``(video, fps)``: ``video`` is float32 ``(1, 3, T, H, W)``, RGB, in ``[0, 1]`` for
        integer sources (grayscale is replicated to 3 channels); ``fps`` is the source
        frame rate (not divided by ``step``), 25.0 when unknown (folders, ``.npy``).

    Raises:
        UserError: Missing path, unsupported extension, corrupt or empty source, bad
            argument, ``start`` beyond the end, too few frames, crop larger than the frame,
            NaN/inf values, a truncated video file. The message names the file.
    """
    p = Path(os.fspath(path))
    start = _check_count(start, "start", 0, p)
    step = _check_count(step, "step", 1, p)
    if frames is not None:
        if _is_int(frames) and int(frames) == 0:
            raise UserError(f"frames=0 requested from {p}: nothing to read")
        frames = _check_count(frames, "frames", 1, p)
    if max_frames is not None:
        max_frames = _check_count(max_frames, "max_frames", 1, p)
    size = _check_size(resize, "resize", p, allow_int=False)
    crop_hw = _check_size(crop, "crop", p, allow_int=True)
    if not os.path.exists(p):
        raise UserError(f"no such file or folder: {p}")

    count = _plan(frames, max_frames)
    proc = _FrameProcessor(p, size, crop_hw)
    suffix = p.suffix.lower()
    if p.is_dir():
        out, fps = _read_folder(p, start, step, frames, count, proc)
    elif suffix in ARRAY_EXTENSIONS:
        out, fps = _read_array(p, start, step, frames, count, proc, key)
    elif suffix in VIDEO_EXTENSIONS:
        out, fps = _read_av(p, start, step, frames, count, proc, allow_truncated)
    else:
        supported = " ".join(sorted(VIDEO_EXTENSIONS | ARRAY_EXTENSIONS))
        raise UserError(f"unsupported file type {p.suffix or '(none)'!r} for {p}; use {supported} or a frame folder")
    if not out:  # defensive: _check_range already covers every empty case
        raise UserError(f"no frames read from {p}")
    return _finish(out), float(fps)


# --------------------------------------------------------------------------------------
# public: write
# --------------------------------------------------------------------------------------


def _video_array(video: torch.Tensor | np.ndarray, path: object) -> np.ndarray:
    """Validate and convert to a float32 numpy ``(C, T, H, W)`` array."""
    if isinstance(video, torch.Tensor):
        if not video.is_floating_point():
            raise UserError(f"video for {path} must be a floating tensor, got {video.dtype}")
        arr = video.detach().to("cpu", torch.float32).numpy()
    elif isinstance(video, np.ndarray):
        if not np.issubdtype(video.dtype, np.floating):
            raise UserError(f"video for {path} must be floating, got {video.dtype}")
        arr = video.astype(np.float32, copy=False)
    else:
        raise UserError(f"video for {path} must be a torch.Tensor, got {type(video).__name__}")
    if arr.ndim == 5:
        if arr.shape[0] != 1:
            raise UserError(f"can write one video at a time to {path}, got batch size {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim != 4 or arr.shape[0] not in (1, 3):
        raise UserError(
            f"video for {path} must be (1, C, T, H, W) or (C, T, H, W) with C in {{1, 3}}, "
            f"got {tuple(video.shape)}"
        )
    if min(arr.shape) == 0:
        raise UserError(f"video for {path} is empty: shape {tuple(video.shape)}")
    if not np.isfinite(arr).all():
        raise UserError(f"video for {path} contains NaN or infinite values")
    return arr


def _quantize(arr: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """``(C, T, H, W)`` float -> ``(T, H, W, C)`` uint8/uint16 (clipped to [0, 1], rounded)."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    q = np.rint(np.clip(arr, 0.0, 1.0) * peak).astype(dtype)
    return np.ascontiguousarray(q.transpose(1, 2, 3, 0))


def _rgb(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, C)`` with C in {1, 3} -> ``(T, H, W, 3)``."""
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _progress(frames: np.ndarray, quiet: bool, path: Path) -> Iterator[np.ndarray]:
    if quiet:
        return iter(frames)
    from tqdm import tqdm

    return iter(tqdm(frames, desc=f"writing {path.name}", unit="frame"))


def _make_av_frame(rgb: np.ndarray, pts: int) -> av.VideoFrame:
    """Wrap one ``(H, W, 3)`` uint8 RGB frame for the encoder."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = pts
    return frame


def _write_av(
    tmp: Path, fmt: str, frames: np.ndarray, fps: float, codec: str, crf: int, quiet: bool, final: Path
) -> None:
    """Encode ``(T, H, W, 3)`` uint8 frames with PyAV into container ``fmt``."""
    _, h, w, _ = frames.shape
    odd = h % 2 or w % 2
    if codec == "ffv1":
        name, pix_fmt, options = "ffv1", "bgr0", {}
    elif codec == "h264-lossless":
        name, pix_fmt, options = "libx264rgb", "rgb24", {"crf": "0", "preset": "medium"}
    else:
        name, options = "libx264", {"crf": str(crf), "preset": "medium"}
        pix_fmt = "yuv444p" if odd else "yuv420p"
        if odd:
            options["profile"] = "high444"
    with av.open(str(tmp), mode="w", format=fmt) as container:
        stream = container.add_stream(name, rate=_rate(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for i, rgb in enumerate(_progress(frames, quiet, final)):
            for packet in stream.encode(_make_av_frame(rgb, i)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _make_gif_frame(rgb: np.ndarray, pts: int) -> av.VideoFrame:
    """Quantise one ``(H, W, 3)`` uint8 RGB frame to a 256-colour ``pal8`` frame (Pillow)."""
    from PIL import Image

    img = Image.fromarray(rgb, mode="RGB").quantize(colors=256)
    indices = np.asarray(img, dtype=np.uint8)
    colours = np.asarray(img.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), dtype=np.uint8)  # PyAV's pal8 rows are A, R, G, B
    palette[:, 0] = 255
    palette[: len(colours), 1:] = colours
    frame = av.VideoFrame.from_ndarray((indices, palette), format="pal8")
    frame.pts = pts
    return frame


def _write_gif(tmp: Path, frames: np.ndarray, fps: float, quiet: bool, final: Path) -> None:
    """Animated GIF: per-frame 256-colour palettes from Pillow, muxed by PyAV.

    PyAV (rather than Pillow's writer) keeps every frame, including repeated ones that
    Pillow would merge, and spreads the centisecond GIF delays so the average rate is fps.
    """
    _, h, w, _ = frames.shape
    with av.open(str(tmp), mode="w", format="gif") as container:
        # Delta tricks compare palette indices, which is wrong with per-frame palettes.
        stream = container.add_stream("gif", rate=_rate(fps), options={"gifflags": "-offsetting-transdiff"})
        stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
        for i, rgb in enumerate(_progress(frames, quiet, final)):
            for packet in stream.encode(_make_gif_frame(rgb, i)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _encode_png(frame: np.ndarray) -> bytes:
    """Encode one ``(H, W, C)`` uint8/uint16 RGB or gray frame as PNG bytes."""
    img = frame[:, :, 0] if frame.shape[2] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _write_folder(tmp: Path, frames: np.ndarray, quiet: bool, final: Path) -> None:
    for i, frame in enumerate(_progress(frames, quiet, final)):
        (tmp / f"frame_{i:05d}.png").write_bytes(_encode_png(frame))


def _is_folder_target(text: str, p: Path) -> bool:
    return text.endswith(("/", os.sep)) or p.suffix == ""


def _check_replaceable_folder(p: Path) -> None:
    """Refuse to replace an existing folder that holds anything but image frames."""
    if not p.is_dir():
        return
    for entry in p.iterdir():
        if entry.is_dir() or (entry.suffix.lower() not in IMAGE_EXTENSIONS and not entry.name.startswith(".")):
            raise UserError(f"refusing to replace folder {p}: it contains {entry.name!r}, which is not a frame image")


def _output_kind(text: str, p: Path) -> str:
    """``"folder"`` or the lower-case suffix of a writable video path; UserError otherwise."""
    suffix = p.suffix.lower()
    if _is_folder_target(text, p):
        return "folder"
    if suffix in _CONTAINER_FORMATS or suffix in (".gif", ".npy", ".npz"):
        return suffix
    raise UserError(
        f"cannot write {p}: unsupported extension {p.suffix!r} "
        "(use .mp4 .mov .mkv .avi .gif .npz .npy, or a folder path for PNG frames)"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def check_output(
    path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (), *, video: bool = True, flag: str = "output"
) -> Path:
    """Check an output path before any work starts, so a long job cannot fail at the end.

    Refuses (:class:`UserError`) an output that resolves to the same file as one of ``inputs``
    or their sidecars (``<input>.json``), or whose sidecar would overwrite an input; with
    ``video`` an extension that :func:`write_video` cannot write; an existing folder where a
    file is expected; and a parent that is not a writable folder (or cannot be created).
    Also deletes stale temporaries of earlier killed runs next to it (:func:`sweep_stale`).

    Returns:
        The output as a :class:`~pathlib.Path`.
    """
    from .atomic import sweep_stale
    from .sidecar import sidecar_path

    text = os.fspath(path)
    p = Path(text)
    if not p.name:
        raise UserError(f"{flag} {text!r} has no file name")
    kind = _output_kind(text, p) if video else p.suffix.lower()
    protected = [Path(os.fspath(i)) for i in inputs if i is not None]
    protected += [sidecar_path(i) for i in protected]
    for target in (p, sidecar_path(p)):
        for q in protected:
            if _same_file(target, q):
                raise UserError(f"refusing to write {flag} {p}: it would overwrite the input {q}")
    if kind != "folder" and p.is_dir():
        raise UserError(f"cannot write {flag} {p}: a folder with that name exists")
    parent = p.parent if str(p.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot write {flag} {p}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {flag} {p}: folder {existing} is not writable")
    sweep_stale(p)
    return p


def check_write_settings(text: str, fps, crf, bit_depth, codec) -> tuple[float, str]:
    """Validate the settings of a video write to ``text``; ``(fps as float, output kind)``.
    UserError naming the file for a bad fps, crf, bit depth, codec or extension."""
    p = Path(text)
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise UserError(f"fps for {p} must be a number, got {fps!r}") from None
    if not (math.isfinite(fps) and fps > 0):
        raise UserError(f"fps for {p} must be positive and finite, got {fps}")
    if not _is_int(crf) or not 0 <= int(crf) <= 51:
        raise UserError(f"crf for {p} must be an integer in 0..51, got {crf!r}")
    if bit_depth not in (8, 16):
        raise UserError(f"bit_depth for {p} must be 8 or 16, got {bit_depth!r}")
    if codec is not None and codec not in WRITE_CODECS:
        raise UserError(f"unknown codec {codec!r} for {p}; choose one of {', '.join(WRITE_CODECS)}")
    kind = _output_kind(text, p)
    if bit_depth == 16 and kind not in ("folder", ".npy", ".npz"):
        raise UserError(f"bit_depth=16 is only supported for PNG frame folders, not {p}")
    return fps, kind


def write_video(
    path: str | os.PathLike,
    video: torch.Tensor,
    fps: float = DEFAULT_FPS,
    *,
    codec: str | None = None,
    crf: int = 18,
    quiet: bool = True,
    bit_depth: int = 8,
) -> Path:
    """Write a video atomically; the format follows the path.

    * ``.mp4`` / ``.mov``: H.264 (libx264, ``crf``), yuv420p; yuv444p (High 4:4:4) when H or
      W is odd so the exact size is kept. ``codec="h264-lossless"``: libx264rgb, crf 0.
    * ``.mkv`` / ``.avi``: FFV1 lossless 8-bit RGB (``codec`` may pick ``"h264"`` or
      ``"h264-lossless"`` instead).
    * ``.gif``: animated GIF, 256-colour palette per frame, ``fps`` kept (GIF delays are
      centiseconds, so rates that do not divide 100 are kept on average).
    * ``.npz``: exact float32, key ``video`` ``(C, T, H, W)`` plus ``fps``.
    * ``.npy``: exact float32 ``(C, T, H, W)``.
    * no suffix or a trailing ``/``: a folder of ``frame_00000.png``, ... (8-bit, or 16-bit
      with ``bit_depth=16``). An existing folder is replaced only if it holds image frames
      alone.

    Values are clipped to ``[0, 1]`` and rounded for 8/16-bit formats; npy/npz store them
    unchanged. Grayscale (C=1) is written as RGB to video files and as gray PNGs.

    Args:
        path: Destination (parents are created).
        video: Float tensor ``(1, C, T, H, W)`` or ``(C, T, H, W)``, C in {1, 3}.
        fps: Frame rate (> 0).
        codec: ``None`` (format default), ``"h264"``, ``"h264-lossless"`` or ``"ffv1"``.
        crf: H.264 quality, 0 (lossless) .. 51; default 18.
        quiet: If false, show a progress bar.
        bit_depth: 8, or 16 for PNG folders.

    Returns:
        The path written.

    Raises:
        UserError: Unsupported extension or codec, bad shape/dtype, NaN/inf values,
            bad fps/crf/bit_depth, or an existing folder that is not a frame folder.
    """
    text = os.fspath(path)
    p = Path(text)
    arr = _video_array(video, p)
    fps, kind = check_write_settings(text, fps, crf, bit_depth, codec)
    if codec is not None:
        allowed = {".mp4": ("h264", "h264-lossless"), ".mov": ("h264", "h264-lossless")}
        allowed.update({".mkv": WRITE_CODECS, ".avi": WRITE_CODECS})
        if codec not in allowed.get(kind, ()):
            raise UserError(f"codec {codec!r} is not supported for {p}")

    if kind == "folder":
        _check_replaceable_folder(p)
        frames = _quantize(arr, bit_depth)
        with atomic_path(p, is_dir=True) as tmp:
            _write_folder(tmp, frames, quiet, p)
    elif kind == ".npz":
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, video=arr, fps=np.float64(fps))
    elif kind == ".npy":
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    elif kind == ".gif":
        frames = _rgb(_quantize(arr))
        with atomic_path(p) as tmp:
            _write_gif(tmp, frames, fps, quiet, p)
    else:
        chosen = codec or ("ffv1" if kind in (".mkv", ".avi") else "h264")
        frames = _rgb(_quantize(arr))
        with atomic_path(p) as tmp:
            _write_av(tmp, _CONTAINER_FORMATS[kind], frames, fps, chosen, int(crf), quiet, p)
    return p
