"""Linear video operators ``A`` with exact adjoints, and measurement noise.

All operators take ``(B, C, T, H, W)`` videos in pixel space ``[0, 1]``. Build them from a
spec string with :func:`parse` (grammar in :data:`GRAMMAR`).
"""

from .base import ApplicationCount, Composition, Identity, LinearOperator, count_applications
from .blur import SpatialBlur, gaussian_kernel, load_kernel, motion_kernel
from .mask import Inpaint
from .noise import measure
from .prox import SpectralProx, prox_solver
from .resize import Downsample
from .spec import GRAMMAR, parse
from .temporal import FrameDrop, TemporalBlur, gaussian_taps, uniform_taps

__all__ = [
    "ApplicationCount", "count_applications", "Composition", "Identity", "LinearOperator", "SpatialBlur", "gaussian_kernel", "load_kernel",
    "motion_kernel", "Inpaint", "measure", "Downsample", "GRAMMAR", "parse", "FrameDrop",
    "TemporalBlur", "gaussian_taps", "uniform_taps", "SpectralProx", "prox_solver",
]
