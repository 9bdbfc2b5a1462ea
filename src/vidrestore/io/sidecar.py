"""Measurement sidecars: a JSON file of metadata stored next to a video.

A degraded measurement ``y.npz`` carries its degradation parameters (operator, noise
level, seed, ...) in ``y.npz.json``; a frame folder ``y/`` in ``y.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from .atomic import atomic_write_text

__all__ = ["read_sidecar", "sidecar_path", "write_sidecar"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the sidecar of ``path``: the path without trailing slashes, plus ``.json``.

    Examples: ``y.npz`` -> ``y.npz.json``; ``frames/`` -> ``frames.json``.

    Args:
        path: A video file or frame folder (it need not exist).

    Returns:
        The sidecar path.
    """
    text = os.fspath(path)
    stripped = text.rstrip("/" + os.sep) or text
    return Path(stripped + ".json")


def _jsonable(obj: Any) -> Any:
    """``json.dumps`` fallback for paths, numpy/torch scalars and arrays, sets and tuples."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    item = getattr(obj, "tolist", None)  # numpy arrays/scalars and torch tensors
    if callable(item):
        return item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def write_sidecar(path: str | os.PathLike, meta: dict) -> Path:
    """Atomically write ``meta`` as JSON (sorted keys, indent 2) to ``sidecar_path(path)``.

    Args:
        path: The video file or frame folder the metadata describes.
        meta: JSON-serialisable mapping (paths, numpy and torch values are converted).

    Returns:
        The sidecar path written.

    Raises:
        UserError: If ``meta`` is not a dict or holds values that cannot be serialised.
    """
    if not isinstance(meta, dict):
        raise UserError(f"sidecar metadata for {path} must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(meta, sort_keys=True, indent=2, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise UserError(f"cannot write sidecar for {path}: {exc}") from exc
    return atomic_write_text(sidecar_path(path), text + "\n")


def read_sidecar(path: str | os.PathLike) -> dict | None:
    """Read the sidecar of ``path``.

    Args:
        path: The video file or frame folder (not the ``.json`` itself).

    Returns:
        The metadata dict, or ``None`` when no sidecar exists.

    Raises:
        UserError: If the sidecar exists but is not a readable JSON object.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"unreadable sidecar {side}: {exc}") from exc
    if not isinstance(meta, dict):
        raise UserError(f"sidecar {side} must hold a JSON object, got {type(meta).__name__}")
    return meta

