"""Test signals: encode uint8 frames as an H.264 file, optionally with a sine tone track.

Used by the streaming and container tests and by ``benchmarks/streaming_memory.py`` to make
clips with a known frame count, frame rate and audio duration without any data files.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["write_test_clip"]


def write_test_clip(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    *,
    tone_rate: int | None = None,
    preset: str = "veryfast",
    container_options: dict | None = None,
) -> Path:
    """Encode ``frames`` (``(H, W, 3)`` uint8 RGB each) as H.264 (crf 18, yuv420p) at ``fps``.

    With ``tone_rate`` (Hz, e.g. 48000) a stereo 440 Hz sine AAC track of exactly the video's
    duration is added. ``container_options`` go to the muxer (e.g. ``{"movflags":
    "faststart"}`` for mp4). Returns ``path``.
    """
    import av

    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as c:
        vs = c.add_stream("libx264", rate=fps, options={"crf": "18", "preset": preset})
        vs.pix_fmt = "yuv420p"
        aus = c.add_stream("aac", rate=tone_rate, layout="stereo") if tone_rate else None
        n_frames = 0
        for i, img in enumerate(frames):
            if i == 0:
                vs.height, vs.width = img.shape[:2]
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                c.mux(p)
            n_frames += 1
        for p in vs.encode():
            c.mux(p)
        if aus is not None:
            n = n_frames * tone_rate // fps
            for s in range(0, n, 1024):
                t = np.arange(s, min(s + 1024, n)) / tone_rate
                ch = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([ch, ch])), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = tone_rate, s, Fraction(1, tone_rate)
                for p in aus.encode(af):
                    c.mux(p)
            for p in aus.encode():
                c.mux(p)
    return path
