"""``vidrestore eval --align``: the video-deblurring evaluation protocol on two files."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_text, read_video
from ..metrics import aligned_video_metrics

__all__ = ["evaluate_aligned_files"]


def evaluate_aligned_files(out: str | Path, ref: str | Path, *, border: int = 16, upsample: int = 1, json_path: str | Path | None = None) -> tuple[dict, str]:
    """Koehler-protocol PSNR/SSIM (see :mod:`vidrestore.metrics.aligned`) of ``out`` vs ``ref``.

    Returns ``(metrics, table_text)``; writes the metrics as JSON if ``json_path``.
    """
    x, _ = read_video(out)
    r, _ = read_video(ref)
    if x.shape != r.shape:
        raise UserError(f"shape mismatch: {out} is {tuple(x.shape)} but {ref} is {tuple(r.shape)}")
    m = aligned_video_metrics(x.clamp(0, 1), r.clamp(0, 1), border=border, upsample=upsample)
    m["output"], m["reference"] = str(out), str(ref)
    table = (
        f"{'video':<24} {'PSNR(Y,aligned)':>16} {'SSIM(Y,aligned)':>16} {'frames':>7}\n"
        f"{Path(out).name[:24]:<24} {m['psnr']:>16.2f} {m['ssim']:>16.4f} {m['frames_scored']:>7d}"
    )
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(m, indent=2))
    return m, table
