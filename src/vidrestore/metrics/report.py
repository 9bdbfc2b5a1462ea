"""Per-video metric summaries and plain-text comparison tables."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ..errors import UserError
from ..flow import FlowEstimator
from ._common import check_pair
from .psnr import psnr
from .ssim import ssim
from .temporal import TemporalFlows, warp_error

__all__ = ["video_metrics", "format_table"]


def video_metrics(
    out: torch.Tensor,
    ref: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    warp: bool = True,
    flow_method: str | FlowEstimator = "dis",
    ref_flows: TemporalFlows | None = None,
) -> dict[str, Any]:
    """PSNR, SSIM and warping error of a restored video against its ground truth.

    PSNR and SSIM follow :func:`vidrestore.metrics.psnr` / :func:`vidrestore.metrics.ssim`
    (per frame, averaged over frames and batch). The warping error
    (:func:`vidrestore.metrics.warp_error`) is measured on ``out`` with flows and occlusion
    masks estimated on ``ref``, on full RGB frames (``crop_border`` and ``y_channel`` do not
    apply to it).

    Args:
        out: restored video ``(B, C, T, H, W)`` in ``[0, 1]`` (an image ``(B, C, H, W)`` is
            treated as a one-frame video).
        ref: ground truth of the same shape.
        crop_border: pixels removed from each border for PSNR/SSIM.
        y_channel: PSNR/SSIM on BT.601 luma (RGB input only).
        warp: compute the warping error (skipped, ``None``, when ``T < 2``).
        flow_method: flow estimator for the warping error.
        ref_flows: precomputed :func:`vidrestore.metrics.compute_ref_flows` of ``ref``
            (reuse it when scoring several outputs against the same reference).

    Returns:
        A dict with ``psnr`` (dB, float, ``inf`` if all frames are identical), ``ssim``
        (float), ``warp_error`` (float in squared ``[0, 1]`` units, or ``None``),
        ``per_frame`` (list of ``{"frame": t, "psnr": ..., "ssim": ...}`` averaged over the
        batch), ``frames`` (T), ``crop_border`` and ``y_channel``.
    """
    check_pair(out, ref, ("out", "ref"))
    if out.ndim == 4:
        out, ref = out.unsqueeze(2), ref.unsqueeze(2)
    kw = {"crop_border": crop_border, "y_channel": y_channel, "reduction": "none"}
    p = psnr(out, ref, **kw)  # (B, T)
    s = ssim(out, ref, **kw)
    t = out.shape[2]
    e = None
    if warp and t >= 2:
        e = warp_error(out, ref, flow_method=flow_method, flows=ref_flows)
    p_frame = p.mean(0)
    s_frame = s.mean(0)
    return {
        "psnr": float(p.mean()),
        "ssim": float(s.mean()),
        "warp_error": e,
        "per_frame": [
            {"frame": i, "psnr": float(p_frame[i]), "ssim": float(s_frame[i])} for i in range(t)
        ],
        "frames": t,
        "crop_border": int(crop_border),
        "y_channel": bool(y_channel),
    }


_COLUMNS = (
    # header, key, formatter
    ("PSNR", "psnr", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("E_warp", "warp_error", "{:.3e}"),
)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return spec.format(v)


def format_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Aligned plain-text table of metrics, one row per method.

    Args:
        rows: method name -> metrics dict (e.g. from :func:`video_metrics`); the keys
            ``psnr`` (dB, 2 decimals), ``ssim`` (4 decimals) and ``warp_error``
            (scientific, 3 decimals) are shown; missing or ``None`` values show as ``-``,
            infinite values as ``inf``.

    Returns:
        The table as a string (header, rule, one line per method; no trailing newline).
        Method names are left-aligned, numbers right-aligned.
    """
    if not isinstance(rows, Mapping):
        raise UserError(f"format_table needs a dict of method -> metrics, got {type(rows).__name__}")
    header = ["Method"] + [c[0] for c in _COLUMNS]
    body = [
        [str(name)] + [_fmt(m.get(key), spec) for _, key, spec in _COLUMNS] for name, m in rows.items()
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(wd) for c, wd in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])
