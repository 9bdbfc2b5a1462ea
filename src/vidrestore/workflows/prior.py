"""Prior jobs: unconditional sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..priors import load_prior, sample_prior_grid
from .methods import resolve_device


def sample_prior_to_png(prior: str, out: str | Path, *, n: int = 8, size: int = 64, steps: int = 50, eta: float = 0.0, seed: int = 0, device: str | None = None, preset: str | None = None) -> Path:
    """Load ``prior``, draw ``n`` DDIM samples (seeded) and write them as a PNG grid atomically."""
    from PIL import Image

    dev = resolve_device(device)
    kw = {"preset": preset} if preset else {}
    p = load_prior(prior, device=dev, **kw)
    grid = sample_prior_grid(p, n=n, size=size, steps=steps, eta=eta, seed=seed, device=dev)
    arr = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    out = Path(out)
    with atomic_path(out) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return out
