"""Peak memory of a streamed restoration: ``vidrestore restore`` of a long clip with audio.

Synthesises an H.264 ``.mp4`` of ``--frames`` frames (default 1000) at 320x240 and 25 fps with
a 440 Hz sine AAC track of the same duration into a temporary folder, runs

    vidrestore restore IN.mp4 -o OUT.mp4 -m cg --op blur:gauss:1.0 -q [--iters N]

in a subprocess, and measures the child's peak resident memory (``ru_maxrss`` of
``getrusage(RUSAGE_CHILDREN)``), its wall time, the output's frame count and the decoded
duration of the input's and the output's audio tracks. Prints one line of JSON; exits with 1
when a target is missed (peak below ``--max-mb`` MB, every frame written, audio durations
equal within one AAC packet).

    python benchmarks/streaming_memory.py [--frames 1000] [--iters 50] [--max-mb 800]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vidrestore.io.testsrc import write_test_clip


def synthesise(path: Path, frames: int, height: int = 240, width: int = 320, fps: int = 25, rate: int = 48000) -> None:
    """A moving colour pattern with a sine AAC track of the same duration."""
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = (np.stack([(xx + 3 * i) % 256, (yy + i) % 256, ((xx + yy) // 2 + 2 * i) % 256], -1).astype(np.uint8) for i in range(frames))
    write_test_clip(path, pattern, fps, tone_rate=rate)


def describe(path: Path) -> dict:
    """Decoded frame count, frame rate and audio duration (seconds, from the decoded samples)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate)
        n = sum(1 for _ in c.decode(v))
    audio = None
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            audio = sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate
    return {"frames": n, "fps": fps, "audio_s": audio}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=None, help="CG iterations (default: restore's, 50)")
    ap.add_argument("--max-mb", type=float, default=800.0)
    ap.add_argument("--keep", default=None, help="Also copy the output here.")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="vidrestore-stream-") as tmp:
        src, out = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        synthesise(src, args.frames)
        cmd = [sys.executable, "-m", "vidrestore.cli", "restore", str(src), "-o", str(out), "-m", "cg", "--op", "blur:gauss:1.0", "-q"]
        if args.iters is not None:
            cmd += ["--iters", str(args.iters)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        if proc.returncode != 0:
            print(json.dumps({"ok": False, "returncode": proc.returncode, "stderr": proc.stderr.strip()[-500:]}))
            return 1
        din, dout = describe(src), describe(out)
        if args.keep:
            Path(args.keep).write_bytes(out.read_bytes())
    packet = 1024 / 48000
    ok = (
        peak_mb < args.max_mb
        and dout["frames"] == args.frames
        and dout["audio_s"] is not None
        and abs(dout["audio_s"] - din["audio_s"]) <= packet
    )
    print(json.dumps({
        "ok": ok, "command": "vidrestore restore in.mp4 -o out.mp4 -m cg --op blur:gauss:1.0 -q" + (f" --iters {args.iters}" if args.iters else ""),
        "frames_in": din["frames"], "frames_out": dout["frames"], "size": "320x240", "fps_in": din["fps"], "fps_out": dout["fps"],
        "audio_in_s": din["audio_s"], "audio_out_s": dout["audio_s"], "peak_rss_mb": round(peak_mb, 1), "max_mb": args.max_mb,
        "wall_s": round(seconds, 1),
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
