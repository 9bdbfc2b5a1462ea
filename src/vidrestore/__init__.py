"""vidrestore: video restoration and generation with diffusion models.

Conventions (see README): videos are ``(B, C, T, H, W)`` float32 tensors with values in
``[0, 1]`` at every public boundary; ``[-1, 1]`` exists only inside diffusion code and is
converted in :mod:`vidrestore.tensor` (``to_model`` / ``to_pixel``).

Nothing heavy is imported here; submodules are imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
