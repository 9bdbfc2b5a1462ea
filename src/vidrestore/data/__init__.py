"""Datasets (L3: may import :mod:`vidrestore.io` and :mod:`vidrestore.ops`). Submodules are imported on demand."""
