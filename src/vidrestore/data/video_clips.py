"""Readers for the public video-prediction benchmarks, for users who have the data.

Two layouts are supported; both yield clips ``(C, T, H, W)`` float32 in ``[0, 1]``:

* **MCVD / LGC-VD HDF5 shards** (Cityscapes 128x128 and BAIR 64x64 as converted by the LGC-VD /
  MCVD scripts; MCVD's KTH conversion is assumed to use the same layout, UNVERIFIED): a folder ``<root>/<split>/`` of ``shard_*.hdf5`` files;
  in each shard ``f["len"][str(i)]`` is the frame count of video ``i`` and ``f[str(i)][str(t)]``
  its frame ``t`` as a ``(H, W, 3)`` uint8 array. Needs ``h5py`` (``pip install h5py``).
* **Frame folders**: ``<root>/<video>/<frames>.png|jpg`` (one sub-folder per video, natural
  order), read with :func:`vidrestore.io.read_video`.

:func:`open_video_dataset` picks the layout from the folder contents. Clip windows are chosen by
the caller's ``torch.Generator`` (see :meth:`VideoClips.sample`), so training stays seeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import IMAGE_EXTENSIONS, read_video

__all__ = ["VideoClips", "HDF5Videos", "FrameFolderVideos", "open_video_dataset"]


def _h5py():
    try:
        import h5py
    except ImportError:
        raise UserError("reading HDF5 video datasets needs h5py: pip install h5py") from None
    return h5py


class VideoClips:
    """Base class: ``len(ds)`` videos, ``ds.length(i)`` frames each, ``ds.clip(i, start, n)`` -> ``(C, n, H, W)``."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def length(self, index: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def clip(self, index: int, start: int, frames: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random window of ``frames`` frames from a random video long enough for it."""
        for _ in range(100):
            i = int(torch.randint(len(self), (1,), generator=generator))
            n = self.length(i)
            if n >= frames:
                start = int(torch.randint(n - frames + 1, (1,), generator=generator))
                return self.clip(i, start, frames)
        raise UserError(f"no video with at least {frames} frames found in 100 draws")


class HDF5Videos(VideoClips):
    """MCVD-style HDF5 shards in ``folder`` (``shard_*.hdf5``; layout in the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        h5py = _h5py()
        self.folder = Path(folder)
        self.shards = sorted(self.folder.glob("shard_*.hdf5"))
        if not self.shards:
            raise UserError(f"no shard_*.hdf5 files in {self.folder}")
        self.index: list[tuple[int, int, int]] = []  # (shard, video key, length)
        for s, path in enumerate(self.shards):
            with h5py.File(path, "r") as f:
                if "len" not in f:
                    raise UserError(f"{path} has no 'len' group (not an MCVD-style shard)")
                for key in sorted(f["len"].keys(), key=int):
                    self.index.append((s, int(key), int(f["len"][key][()])))

    def __len__(self) -> int:
        return len(self.index)

    def length(self, index: int) -> int:
        return self.index[index][2]

    def clip(self, index: int, start: int, frames: int) -> torch.Tensor:
        h5py = _h5py()
        s, key, n = self.index[index]
        if start < 0 or start + frames > n:
            raise UserError(f"video {index} has {n} frames; cannot read {frames} from {start}")
        with h5py.File(self.shards[s], "r") as f:
            arr = np.stack([np.asarray(f[str(key)][str(t)][()]) for t in range(start, start + frames)])
        if arr.ndim == 3:
            arr = arr[..., None]
        x = torch.from_numpy(arr.astype(np.float32) / 255.0)  # (T, H, W, C)
        return x.permute(3, 0, 1, 2).contiguous()


class FrameFolderVideos(VideoClips):
    """One sub-folder of image frames per video under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.videos = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            n = sum(1 for q in d.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS and not q.name.startswith("."))
            if n:
                self.videos.append((d, n))
        if not self.videos:
            raise UserError(f"no sub-folders with image frames in {self.root}")

    def __len__(self) -> int:
        return len(self.videos)

    def length(self, index: int) -> int:
        return self.videos[index][1]

    def clip(self, index: int, start: int, frames: int) -> torch.Tensor:
        x, _ = read_video(self.videos[index][0], start=start, frames=frames)
        return x[0]


def open_video_dataset(root: str | os.PathLike, split: str | None = None) -> VideoClips:
    """Open ``root`` (or ``root/split``) as HDF5 shards if it holds ``shard_*.hdf5``, else as frame folders."""
    path = Path(root)
    if split is not None and (path / split).is_dir():
        path = path / split
    if not path.is_dir():
        raise UserError(f"dataset folder not found: {path}")
    if any(path.glob("shard_*.hdf5")):
        return HDF5Videos(path)
    return FrameFolderVideos(path)
