"""vidrestore: video restoration and generation with diffusion models.

Conventions (see README): videos are ``(B, C, T, H, W)`` float32 tensors with values in
``[0, 1]`` at every public boundary; ``[-1, 1]`` exists only inside diffusion code and is
converted in :mod:`vidrestore.tensor` (``to_model`` / ``to_pixel``).

Nothing heavy is imported here; submodules are imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_prior"]


def __getattr__(name: str):
    # Lazy re-exports: ``vidrestore.load_prior`` without importing torch at package import.
    if name == "load_prior":
        from .priors import load_prior

        return load_prior
    raise AttributeError(f"module 'vidrestore' has no attribute {name!r}")
