"""Streaming video I/O: read frame windows lazily and write frames as they are finished.

:func:`open_video` returns a :class:`VideoSource`: the frame count, frame rate, size and audio
track of a clip are known at once, but frames are read only when asked for
(:meth:`VideoSource.read`, :meth:`VideoSource.chunks`), so a long clip never has to fit in
memory:

* video files are decoded with PyAV, forwards; a request for frames behind the decoder that
  are not in its cache (the frames of the previous request) restarts decoding from the first
  frame (circular temporal operators ask for the last frames first: two decoding passes);
* ``.npy`` and uncompressed ``.npz`` arrays (what :func:`~vidrestore.io.write_video` writes)
  are memory-mapped; a compressed ``.npz`` member is loaded whole;
* frame folders read one image file per frame.

Frames are processed exactly as :func:`~vidrestore.io.read_video` does (``start``/``frames``
selection, ``resize`` then centre ``crop``), so both give the same values.

:class:`VideoWriter` writes ``(1, C, n, H, W)`` chunks as they come: video files are encoded
frame by frame, PNG folders get one file per frame, ``.npy``/``.npz`` arrays are filled in
place (their frame count is declared up front). Everything goes to a hidden temporary that is
renamed into place by :meth:`VideoWriter.close`; an error (or :meth:`VideoWriter.abort`)
deletes it, so a failed job leaves no partial output. ``.mp4``/``.mov``/``.mkv``/``.avi``
outputs can carry an audio track copied from the source (:class:`AudioCopy`): the packets are
copied when the output container accepts the codec, else re-encoded (AAC; MP3 for ``.avi``),
and cut to the time span of the selected frames (to the nearest audio packet, about 20 ms for
AAC).
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from ..errors import UserError, warn
from .atomic import atomic_path
from .video import (
    ARRAY_EXTENSIONS,
    check_write_settings,
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    WRITE_CODECS,
    _CONTAINER_FORMATS,
    _FrameProcessor,
    _as_thwc,
    _av_to_ndarray,
    _check_count,
    _check_range,
    _check_replaceable_folder,
    _check_size,
    _declared_frames,
    _encode_png,
    _is_int,
    _load_array,
    _make_av_frame,
    _make_gif_frame,
    _natural_key,
    _quantize,
    _rate,
    _read_image,
    _short_read,
    _stream_fps,
    _video_array,
)

__all__ = ["AudioCopy", "VideoSource", "VideoWriter", "iter_video", "open_video", "probe_audio"]

#: Output formats that can hold an audio track.
AUDIO_CONTAINERS = frozenset({".mp4", ".mov", ".mkv", ".avi"})


# --------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioCopy:
    """The audio of ``path`` between ``start`` and ``end`` seconds (``end=None``: to the end),
    to be written next to the video frames; time 0 of the output is ``start`` in the source."""

    path: str
    start: float = 0.0
    end: float | None = None


def probe_audio(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video file with at least one audio stream (never raises)."""
    p = Path(os.fspath(path))
    if p.is_dir() or p.suffix.lower() not in VIDEO_EXTENSIONS:
        return False
    try:
        with av.open(str(p), mode="r") as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------


class _Frames:
    """Random access to the processed frames ``0 .. n-1`` of one kind of source."""

    n: int

    def get(self, ids: Sequence[int]) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _npz_member_memmap(path: Path, key: str) -> np.ndarray | None:
    """Memory-map array ``key`` of an ``.npz`` stored without compression (``np.savez``);
    ``None`` when the member is compressed or not a plain array."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            data = info.header_offset + 30 + name_len + extra_len
            fh.seek(data)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return None
            offset = fh.tell()
        if dtype.hasobject:
            return None
        if not shape or math.prod(shape) == 0:
            return None
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, struct.error):
        return None


class _ArrayFrames(_Frames):
    def __init__(self, path: Path, key: str | None):
        arr, self.fps = _load_array(path, key)  # .npy: memory-mapped; .npz: see below
        if path.suffix.lower() == ".npz":
            name = key
            if name is None:
                with np.load(path, allow_pickle=False) as npz:
                    keys = list(npz.files)
                name = "video" if "video" in keys else next(k for k in keys if k != "fps")
            mapped = _npz_member_memmap(path, name)
            if mapped is not None and mapped.shape == arr.shape and mapped.dtype == arr.dtype:
                del arr
                arr = mapped
        self.thwc = _as_thwc(arr, path)
        if min(self.thwc.shape) == 0:
            raise UserError(f"{path} holds an empty array of shape {tuple(arr.shape)}")
        self.n = int(self.thwc.shape[0])
        self.path = path

    def get(self, ids):
        return [np.array(self.thwc[i]) for i in ids]


class _FolderFrames(_Frames):
    def __init__(self, path: Path):
        self.files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        if not self.files:
            raise UserError(f"folder {path} contains no image frames ({' '.join(sorted(IMAGE_EXTENSIONS))})")
        self.n = len(self.files)
        self.fps = DEFAULT_FPS

    def get(self, ids):
        return [_read_image(self.files[i]) for i in ids]


class _AVFrames(_Frames):
    """Forward decoding with PyAV; ``get`` restarts from the first frame for ids behind it."""

    def __init__(self, path: Path, allow_truncated: bool):
        self.path, self.allow_truncated = path, allow_truncated
        self._container = None
        self._frames = None
        self.pos = 0  # raw index of the next frame the decoder yields
        self._open()
        stream = self._container.streams.video[0]
        self.fps = _stream_fps(stream)
        self.time_base = stream.time_base
        self.declared, exact = _declared_frames(self._container, stream, self.fps)
        if self.declared is not None and exact and not allow_truncated:
            self.n = self.declared  # checked while decoding: a shorter stream is an error
        else:
            self.n = self._count()
            self._restart()

    def _open(self) -> None:
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot open video {self.path}: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise UserError(f"{self.path} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self.pos = 0

    def _restart(self) -> None:
        self.close()
        self._open()

    def _next(self):
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except (av.FFmpegError, OSError, ValueError) as exc:
            if self.pos == 0:
                raise UserError(f"cannot decode video {self.path}: {exc}") from exc
            _short_read(self.path, self.pos, max(self.n, self.pos + 1), self.allow_truncated, f" (decoding failed: {exc})")
            return None
        self.pos += 1
        return frame

    def _count(self) -> int:
        """Decode the whole stream once (no pixel conversion) to count its frames."""
        while self._next() is not None:
            pass
        seen = self.pos
        if self.declared is not None:
            _, exact = _declared_frames(self._container, self._container.streams.video[0], self.fps)
            if seen < (self.declared if exact else self.declared - 1):
                _short_read(self.path, seen, self.declared, self.allow_truncated)
        return seen

    def get(self, ids):
        out: dict[int, np.ndarray] = {}
        for i in sorted(set(ids)):
            if i < self.pos:
                self._restart()
            while self.pos <= i:
                frame = self._next()
                if frame is None:
                    _short_read(self.path, self.pos, self.n, False)
                if self.pos - 1 == i:
                    out[i] = _av_to_ndarray(frame)
        return [out[i] for i in ids]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class VideoSource:
    """A clip whose frames are read on demand (see the module docstring).

    Quacks like a ``(1, 3, T, H, W)`` float32 tensor where the windowed solvers need it
    (``shape``, ``ndim``, ``dtype``, ``device``, ``index_select`` along dim 2, ``cpu()``), so a
    :class:`~vidrestore.solvers.windows.WindowedProblem` reads only the frames of the window
    it solves. Frames of the previous request are cached, so overlapping windows are decoded
    once. Use :func:`open_video` to create one; close it (or use it as a context manager)
    when done.

    Attributes:
        path: The source.
        fps: Its frame rate (25.0 when unknown: folders, ``.npy``).
        start: Index of the first selected source frame.
        shape: ``(1, 3, T, H, W)`` of the selected, processed frames.
        has_audio: Whether the source is a video file with an audio stream.
    """

    ndim = 5
    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, path: Path, frames: _Frames, start: int, count: int, proc: _FrameProcessor, fps: float):
        self.path, self._frames, self.start, self.num_frames, self._proc = path, frames, start, count, proc
        self.fps = float(fps)
        self._cache: dict[int, np.ndarray] = {}
        first = self._read_np([0])[0]
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        self.shape = torch.Size((1, 3, count, self.height, self.width))
        self.has_audio = probe_audio(path)

    # ---- reading
    def _read_np(self, ids: Sequence[int]) -> list[np.ndarray]:
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self.num_frames:
                raise IndexError(f"frame {i} outside 0..{self.num_frames - 1} of {self.path}")
        missing = sorted({i for i in ids if i not in self._cache})
        got = dict(zip(missing, self._frames.get([self.start + i for i in missing]))) if missing else {}
        out: dict[int, np.ndarray] = {}
        for i in set(ids):
            out[i] = self._cache[i] if i in self._cache else self._proc(got[i], f"{self.path} (frame {self.start + i})")
        self._cache = out  # keep what this request read: the next window overlaps it
        return [out[i] for i in ids]

    def read(self, ids: Sequence[int]) -> torch.Tensor:
        """Frames ``ids`` (indices into the selected clip) as a float32 ``(1, 3, n, H, W)`` tensor."""
        frames = self._read_np(ids)
        video = torch.from_numpy(np.stack(frames, axis=0)).permute(3, 0, 1, 2).unsqueeze(0)
        if video.shape[1] == 1:
            video = video.expand(-1, 3, -1, -1, -1)
        return video.contiguous()

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim not in (2, -3):
            raise ValueError("a VideoSource can only be indexed along the frame axis (dim 2)")
        return self.read(index.tolist())

    def cpu(self) -> "VideoSource":
        return self

    def chunks(self, size: int = 16) -> Iterator[torch.Tensor]:
        """Consecutive ``(1, 3, n, H, W)`` chunks of at most ``size`` frames, in order."""
        size = max(int(size), 1)
        for s in range(0, self.num_frames, size):
            yield self.read(range(s, min(s + size, self.num_frames)))

    def load(self) -> torch.Tensor:
        """All selected frames as one ``(1, 3, T, H, W)`` tensor (memory grows with T)."""
        return self.read(range(self.num_frames))

    def audio(self) -> AudioCopy | None:
        """The source's audio over the selected frames (to the end of the audio when the
        selection reaches the last frame), or ``None`` without audio."""
        if not self.has_audio:
            return None
        to_end = self.start + self.num_frames >= self._frames.n
        return AudioCopy(str(self.path), self.start / self.fps, None if to_end else (self.start + self.num_frames) / self.fps)

    def close(self) -> None:
        self._cache = {}
        self._frames.close()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(
    path: str | os.PathLike,
    *,
    start: int = 0,
    frames: int | None = None,
    resize: tuple[int, int] | None = None,
    crop: int | tuple[int, int] | None = None,
    allow_truncated: bool = False,
    key: str | None = None,
) -> VideoSource:
    """Open a video file, frame folder or array file for streaming (see :class:`VideoSource`).

    Arguments and errors as :func:`~vidrestore.io.read_video` (``step`` 1). The frame count is
    the container's exact count when it declares one (a shorter stream is then an error when
    it is reached), else it is counted by decoding the stream once; ``allow_truncated`` always
    counts, and accepts a stream shorter than declared with a warning. The first selected frame
    is read at once, so a crop larger than the frame fails here.
    """
    p = Path(os.fspath(path))
    start = _check_count(start, "start", 0, p)
    if frames is not None:
        if _is_int(frames) and int(frames) == 0:
            raise UserError(f"frames=0 requested from {p}: nothing to read")
        frames = _check_count(frames, "frames", 1, p)
    size = _check_size(resize, "resize", p, allow_int=False)
    crop_hw = _check_size(crop, "crop", p, allow_int=True)
    if not os.path.exists(p):
        raise UserError(f"no such file or folder: {p}")
    suffix = p.suffix.lower()
    if p.is_dir():
        src: _Frames = _FolderFrames(p)
    elif suffix in ARRAY_EXTENSIONS:
        src = _ArrayFrames(p, key)
    elif suffix in VIDEO_EXTENSIONS:
        if key is not None:
            raise UserError(f"--key applies to .npz files, not {p}")
        src = _AVFrames(p, allow_truncated)
    else:
        supported = " ".join(sorted(VIDEO_EXTENSIONS | ARRAY_EXTENSIONS))
        raise UserError(f"unsupported file type {p.suffix or '(none)'!r} for {p}; use {supported} or a frame folder")
    try:
        total = src.n
        count = total - start if frames is None else frames
        _check_range(p, total, start, 1, frames, max(min(count, total - start), 0))
        return VideoSource(p, src, start, count, _FrameProcessor(p, size, crop_hw), src.fps)
    except BaseException:
        src.close()
        raise


def iter_video(path: str | os.PathLike, chunk: int = 16, **kwargs) -> Iterator[torch.Tensor]:
    """Generator of consecutive ``(1, 3, n, H, W)`` float32 chunks (``n <= chunk``) of a clip;
    ``kwargs`` as :func:`open_video`. Memory holds one chunk at a time."""
    with open_video(path, **kwargs) as src:
        yield from src.chunks(chunk)


# --------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------


def _encoder(codec: str, h: int, w: int, crf: int) -> tuple[str, str, dict]:
    if codec == "ffv1":
        return "ffv1", "bgr0", {}
    if codec == "h264-lossless":
        return "libx264rgb", "rgb24", {"crf": "0", "preset": "medium"}
    odd = h % 2 or w % 2
    options = {"crf": str(crf), "preset": "medium"}
    if odd:
        options["profile"] = "high444"
    return "libx264", "yuv444p" if odd else "yuv420p", options


#: Audio encoders used when a container does not take the source's codec as it is.
_AUDIO_REENCODE = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".avi": "libmp3lame"}


class _AudioMux:
    """Copies (or re-encodes) the audio packets of ``copy`` into ``container`` as video advances."""

    def __init__(self, container, copy: AudioCopy, kind: str):
        self.out = container
        self.src = av.open(copy.path, mode="r")
        try:
            self.ain = self.src.streams.audio[0]
            self.tb = self.ain.time_base
            origin = self.ain.start_time or 0
            self.t0 = int(round(copy.start / self.tb)) + origin
            self.t1 = None if copy.end is None else int(round(copy.end / self.tb)) + origin
            self.reencode = not self._container_takes(kind, self.ain.codec_context.name)
            if self.reencode:
                name = _AUDIO_REENCODE[kind]
                rate = self.ain.codec_context.sample_rate or 48000
                layout = self.ain.codec_context.layout.name if self.ain.codec_context.layout else "stereo"
                self.aout = container.add_stream(name, rate=rate, layout=layout)
                self.resampler = av.AudioResampler(format=self.aout.codec_context.format.name, layout=layout, rate=rate)
            else:
                self.aout = container.add_stream_from_template(self.ain)
        except BaseException:
            self.src.close()
            raise
        self.packets = self.src.demux(self.ain)
        self.pending = None
        self.done = False

    @staticmethod
    def _container_takes(kind: str, codec: str) -> bool:
        accepted = {
            ".mp4": {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"},
            ".mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
            ".avi": {"mp3", "ac3", "pcm_s16le", "pcm_u8"},
        }
        return kind == ".mkv" or codec in accepted.get(kind, set())

    def feed(self, until_seconds: float | None) -> None:
        """Write the audio up to ``until_seconds`` of output time (``None``: all of it)."""
        while not self.done:
            if self.pending is None:
                try:
                    self.pending = next(self.packets)
                except StopIteration:
                    self.done = True
                    break
            pkt = self.pending
            if pkt.pts is None:  # the demuxer's flush packet
                self.pending = None
                continue
            if until_seconds is not None and float((pkt.pts - self.t0) * self.tb) > until_seconds:
                return
            self.pending = None
            if pkt.pts < self.t0:
                continue
            if self.t1 is not None and pkt.pts >= self.t1:
                self.done = True
                break
            self._write(pkt)

    def _write(self, pkt) -> None:
        if not self.reencode:
            pkt.pts -= self.t0
            pkt.dts = pkt.pts if pkt.dts is None else pkt.dts - self.t0
            pkt.stream = self.aout
            self.out.mux(pkt)
            return
        for frame in pkt.decode():
            frame.pts = None
            for f in self.resampler.resample(frame):
                for p in self.aout.encode(f):
                    self.out.mux(p)

    def finish(self) -> None:
        self.feed(None)
        if self.reencode:
            for f in self.resampler.resample(None):
                for p in self.aout.encode(f):
                    self.out.mux(p)
            for p in self.aout.encode(None):
                self.out.mux(p)
        self.close()

    def close(self) -> None:
        try:
            self.src.close()
        except Exception:  # noqa: BLE001 - cleanup only
            pass


class VideoWriter:
    """Write a video chunk by chunk, atomically; the format follows the path (as
    :func:`~vidrestore.io.write_video`: H.264 ``.mp4``/``.mov``, FFV1 ``.mkv``/``.avi``,
    ``.gif``, exact float32 ``.npz``/``.npy``, a PNG folder for a path without suffix).

    Args:
        path: Destination.
        fps: Frame rate (> 0).
        num_frames: Total frame count; required for ``.npy``/``.npz`` (their header comes
            first), checked at :meth:`close` for every format when given.
        codec, crf, bit_depth: As for :func:`~vidrestore.io.write_video`.
        audio: :class:`AudioCopy` of the source's audio, for ``.mp4``/``.mov``/``.mkv``/``.avi``
            (other formats hold no audio; it is then ignored).

    Use as a context manager, or call :meth:`close` (commit) / :meth:`abort` (discard)::

        with VideoWriter("out.mp4", 25.0, audio=src.audio()) as w:
            for chunk in chunks:
                w.write(chunk)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        *,
        num_frames: int | None = None,
        codec: str | None = None,
        crf: int = 18,
        bit_depth: int = 8,
        audio: AudioCopy | None = None,
    ):
        text = os.fspath(path)
        self.path = p = Path(text)
        fps, kind = check_write_settings(text, fps, crf, bit_depth, codec)
        self.kind = kind
        if codec is not None:
            allowed = {".mp4": ("h264", "h264-lossless"), ".mov": ("h264", "h264-lossless"), ".mkv": WRITE_CODECS, ".avi": WRITE_CODECS}
            if codec not in allowed.get(kind, ()):
                raise UserError(f"codec {codec!r} is not supported for {p}")
        if kind in (".npy", ".npz") and num_frames is None:
            raise UserError(f"writing {p} chunk by chunk needs the frame count up front")
        if kind == "folder":
            _check_replaceable_folder(p)
        self.fps, self.num_frames, self.codec, self.crf, self.bit_depth = fps, num_frames, codec, int(crf), bit_depth
        self.audio = audio if kind in AUDIO_CONTAINERS else None
        self.written = 0
        self._stack = ExitStack()
        self._state: dict = {}
        self._closed = False
        self.tmp = self._stack.enter_context(atomic_path(p, is_dir=kind == "folder"))

    # ---- lifecycle
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)

    def abort(self, exc: BaseException | None = None) -> None:
        """Discard everything written (the temporary is deleted; an existing output is kept)."""
        if self._closed:
            return
        self._closed = True
        self._release()
        err = exc if isinstance(exc, BaseException) else RuntimeError("aborted")
        self._stack.__exit__(type(err), err, err.__traceback__)

    def close(self) -> Path:
        """Finish the file and move it into place; returns the path written."""
        if self._closed:
            raise ValueError(f"{self.path} is already closed")
        try:
            if self.written == 0:
                raise UserError(f"no frames were written to {self.path}")
            if self.num_frames is not None and self.written != self.num_frames:
                raise UserError(f"{self.path}: {self.written} frames written, {self.num_frames} declared")
            self._finish()
        except BaseException as e:
            self.abort(e)
            raise
        self._closed = True
        self._stack.close()  # atomic rename
        return self.path

    def _release(self) -> None:
        st = self._state
        if "audio" in st:
            st["audio"].close()
        for name in ("container", "file"):
            if name in st:
                try:
                    st[name].close()
                except Exception:  # noqa: BLE001 - cleanup only
                    pass
        self._state = {}

    # ---- writing
    def write(self, chunk: torch.Tensor | np.ndarray) -> None:
        """Append frames: ``(1, C, n, H, W)`` or ``(C, n, H, W)`` floats, C in {1, 3}."""
        if self._closed:
            raise ValueError(f"{self.path} is closed")
        try:
            arr = _video_array(chunk, self.path)
            self._write(arr)
        except BaseException as e:
            self.abort(e)
            raise
        self.written += arr.shape[1]

    def _first(self, arr: np.ndarray) -> None:
        c, _, h, w = arr.shape
        self.frame_shape = (c, h, w)
        st, kind = self._state, self.kind
        if kind in (".npy", ".npz"):
            header_path = self.tmp if kind == ".npy" else self.tmp.with_name(self.tmp.name + ".npy")
            if kind == ".npz":
                self._stack.callback(lambda: header_path.unlink(missing_ok=True))
            fh = open(header_path, "w+b")
            st["file"], st["npy"] = fh, header_path
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (c, self.num_frames, h, w)}
            np.lib.format.write_array_header_1_0(fh, header)
            st["data"] = fh.tell()
            fh.truncate(st["data"] + c * self.num_frames * h * w * 4)
        elif kind == ".gif":
            container = av.open(str(self.tmp), mode="w", format="gif")
            st["container"] = container
            stream = container.add_stream("gif", rate=_rate(self.fps), options={"gifflags": "-offsetting-transdiff"})
            stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
            st["stream"] = stream
        elif kind in _CONTAINER_FORMATS:
            container = av.open(str(self.tmp), mode="w", format=_CONTAINER_FORMATS[kind])
            st["container"] = container
            chosen = self.codec or ("ffv1" if kind in (".mkv", ".avi") else "h264")
            name, pix_fmt, options = _encoder(chosen, h, w, self.crf)
            stream = container.add_stream(name, rate=_rate(self.fps), options=options)
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            st["stream"] = stream
            if self.audio is not None:
                try:
                    st["audio"] = _AudioMux(container, self.audio, kind)
                except (av.FFmpegError, OSError, ValueError, IndexError) as e:
                    warn(f"cannot copy the audio of {self.audio.path} into {self.path} ({e}); writing the video without audio")

    def _write(self, arr: np.ndarray) -> None:
        if self.written == 0:
            self._first(arr)
        c, n, h, w = arr.shape
        if (c, h, w) != self.frame_shape:
            raise UserError(f"chunk of shape {tuple(arr.shape)} does not match the first chunk's frames {self.frame_shape} for {self.path}")
        if self.num_frames is not None and self.written + n > self.num_frames:
            raise UserError(f"more than the declared {self.num_frames} frames written to {self.path}")
        st, kind, t0 = self._state, self.kind, self.written
        if kind in (".npy", ".npz"):
            fh = st["file"]
            plane = h * w * 4
            for ch in range(c):
                fh.seek(st["data"] + (ch * self.num_frames + t0) * plane)
                fh.write(np.ascontiguousarray(arr[ch], dtype="<f4").tobytes())
        elif kind == "folder":
            frames = _quantize(arr, self.bit_depth)
            for i, frame in enumerate(frames):
                (self.tmp / f"frame_{t0 + i:05d}.png").write_bytes(_encode_png(frame))
        else:
            frames = _quantize(arr)
            if frames.shape[3] == 1:
                frames = np.repeat(frames, 3, axis=3)
            container, stream = st["container"], st["stream"]
            make = _make_gif_frame if kind == ".gif" else _make_av_frame
            for i, rgb in enumerate(frames):
                for packet in stream.encode(make(rgb, t0 + i)):
                    container.mux(packet)
            if "audio" in st:
                st["audio"].feed((t0 + n) / self.fps)

    def _finish(self) -> None:
        st, kind = self._state, self.kind
        if kind in (".npy", ".npz"):
            fh = st.pop("file")
            fh.flush()
            if kind == ".npz":
                fh.seek(0)
                with open(self.tmp, "wb") as out, zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                    with zf.open("video.npy", "w", force_zip64=True) as member:
                        shutil.copyfileobj(fh, member, 1 << 22)
                    with zf.open("fps.npy", "w") as member:
                        np.lib.format.write_array(member, np.asarray(np.float64(self.fps)))
            fh.close()
        elif "container" in st:
            container, stream = st["container"], st["stream"]
            for packet in stream.encode():
                container.mux(packet)
            if "audio" in st:
                st.pop("audio").finish()
            st.pop("container").close()


def write_stream(path: str | os.PathLike, chunks, fps: float = DEFAULT_FPS, **kwargs) -> Path:
    """Write an iterable of ``(1, C, n, H, W)`` chunks with a :class:`VideoWriter`."""
    with VideoWriter(path, fps, **kwargs) as w:
        for c in chunks:
            w.write(c)
    return w.path


__all__.append("write_stream")
