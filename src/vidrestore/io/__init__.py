"""Video I/O: read/write ``(1, C, T, H, W)`` float32 videos, atomic writes, sidecars.

Layering: this package imports only :mod:`vidrestore.errors`, :mod:`vidrestore.tensor`,
:mod:`vidrestore.linalg` and third-party libraries.
"""

from .atomic import atomic_path, atomic_write_bytes, atomic_write_text, install_sigterm_cleanup, sweep_stale
from .sidecar import read_sidecar, sidecar_path, write_sidecar
from .video import (
    ARRAY_EXTENSIONS,
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    check_output,
    read_video,
    write_video,
)

__all__ = [
    "ARRAY_EXTENSIONS",
    "DEFAULT_FPS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output",
    "install_sigterm_cleanup",
    "sweep_stale",
    "read_sidecar",
    "read_video",
    "sidecar_path",
    "write_sidecar",
    "write_video",
]
