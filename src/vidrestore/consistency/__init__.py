"""Training-free temporal consistency for per-frame diffusion restorers (DiffIR2VR-Zero).

Yeh et al., "DiffIR2VR-Zero: Zero-Shot Video Restoration with Diffusion-based Image Restoration
Models", arXiv 2407.01519. Parts:

* :mod:`.diffir2vr` — :func:`solve_diffir2vr` (batches, keyframes, flows, the wrapper) and
  :class:`DiffIR2VRConfig`;
* :mod:`.warping` — hierarchical latent warping as a solver ``x0_hook``;
* :mod:`.patch` — hybrid flow/cosine token merging in ADM or diffusers self-attention;
* :mod:`.tome` — merge plans (merge / replace-unmerge) and chunked matching.

Layering: at the solvers level; imports ``flow``, ``ops``, ``diffusion``, ``nets`` (the ADM
attention block type) and ``solvers``.
"""

from .diffir2vr import BASES, PAPER_SETTINGS, DiffIR2VRConfig, frame_batches, merge_ratio, pick_keyframes, solve_diffir2vr, stage1_guide
from .patch import FrameGroup, TokenMerger, token_merging
from .tome import MergePlan, build_plan, cosine_match, flow_match
from .warping import LatentWarper, WarpLink

__all__ = [
    "BASES",
    "DiffIR2VRConfig",
    "FrameGroup",
    "LatentWarper",
    "MergePlan",
    "PAPER_SETTINGS",
    "TokenMerger",
    "WarpLink",
    "build_plan",
    "cosine_match",
    "flow_match",
    "frame_batches",
    "merge_ratio",
    "pick_keyframes",
    "solve_diffir2vr",
    "stage1_guide",
    "token_merging",
]
