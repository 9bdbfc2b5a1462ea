"""Readers for the video-deblurring datasets in the folder layouts PVDNet's code expects.

* Su et al., "Deep Video Deblurring for Hand-held Cameras", CVPR 2017 (DVD)::

      ROOT/train_DVD/<video>/input/*.jpg   ROOT/train_DVD/<video>/GT/*.jpg
      ROOT/test_DVD/<video>/{input,GT}/

* Nah et al., "Deep Multi-scale CNN for Dynamic Scene Deblurring", CVPR 2017 (GoPro,
  ``blur_gamma`` version)::

      ROOT/train_nah/<video>/blur_gamma/*.png   ROOT/train_nah/<video>/sharp/*.png
      ROOT/test_nah/<video>/{blur_gamma,sharp}/

The datasets are not bundled; users who have them point ``root`` at the folder above
(PVDNet's ``config.data_offset``). Frames are sorted by natural order and returned as
``(1, 3, T, H, W)`` float32 in ``[0, 1]``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

__all__ = ["LAYOUTS", "DeblurVideo", "list_deblur_videos", "read_deblur_clip"]

#: layout -> (split folder pattern, blurry subfolder, sharp subfolder)
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "dvd": ("{split}_DVD", "input", "GT"),
    "nah": ("{split}_nah", "blur_gamma", "sharp"),
}

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _frames(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXT and not p.name.startswith(".")), key=lambda p: _natural(p.name))


@dataclass(frozen=True)
class DeblurVideo:
    """One video of a deblurring dataset: matching blurry and sharp frame files."""

    name: str
    blurry: tuple[Path, ...]
    sharp: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.blurry)


def list_deblur_videos(root: str | os.PathLike, layout: str = "dvd", split: str = "test") -> list[DeblurVideo]:
    """Videos of ``root/<split>_DVD`` or ``root/<split>_nah`` (see the module docstring).

    Args:
        root: dataset root.
        layout: ``"dvd"`` (Su et al.) or ``"nah"`` (Nah et al. GoPro).
        split: ``"train"`` or ``"test"``.

    Raises:
        UserError: unknown layout/split, missing folders, or blurry/sharp frame counts differ.
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', got {split!r}")
    pattern, blur_dir, sharp_dir = LAYOUTS[layout]
    base = Path(root) / pattern.format(split=split)
    if not base.is_dir():
        raise UserError(f"dataset folder not found: {base}")
    videos = []
    for vid in sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: _natural(p.name)):
        bdir, sdir = vid / blur_dir, vid / sharp_dir
        if not bdir.is_dir() or not sdir.is_dir():
            raise UserError(f"{vid} must contain {blur_dir}/ and {sharp_dir}/")
        b, s = _frames(bdir), _frames(sdir)
        if len(b) != len(s) or not b:
            raise UserError(f"{vid}: {len(b)} blurry but {len(s)} sharp frames")
        videos.append(DeblurVideo(vid.name, tuple(b), tuple(s)))
    if not videos:
        raise UserError(f"no videos in {base}")
    return videos


def read_deblur_clip(video: DeblurVideo, start: int = 0, frames: int | None = None, crop: tuple[int, int, int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``frames`` consecutive blurry and sharp frames from ``start``.

    Args:
        video: a :class:`DeblurVideo`.
        start, frames: frame range (``frames=None``: to the end).
        crop: optional ``(top, left, height, width)`` applied to every frame.

    Returns:
        ``(blurry, sharp)``, each ``(1, 3, T, H, W)`` float32 in ``[0, 1]``.
    """
    stop = len(video) if frames is None else min(len(video), start + frames)
    if not 0 <= start < stop:
        raise UserError(f"{video.name}: frame range {start}..{stop} is empty (video has {len(video)} frames)")

    def load(paths):
        from PIL import Image

        arrs = []
        for p in paths[start:stop]:
            with Image.open(p) as im:
                arrs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        v = torch.from_numpy(np.stack(arrs)).permute(3, 0, 1, 2)[None].float().div_(255.0)
        if crop is not None:
            t, l, h, w = crop
            v = v[..., t : t + h, l : l + w]
        return v

    return load(video.blurry), load(video.sharp)
