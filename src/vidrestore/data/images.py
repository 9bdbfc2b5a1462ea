"""Random image crops from a folder of photos and video clips (training data for image priors).

:class:`ImageCropDataset` scans a folder recursively, decodes every image and every
``video_stride``-th frame of every video into memory as ``uint8`` RGB arrays, and draws
random ``size x size`` crops with horizontal flips. Large images (wider than
``large_width`` pixels) are kept at 1/2 and 1/4 scale only, so that a 64x64 crop shows a
useful amount of content and JPEG artefacts are averaged away.

Sampling is stateless: the crops of batch ``k`` are a function of ``(seed, k)`` only, so a
resumed training run sees exactly the data an uninterrupted run would have seen.

Files whose name matches one of the ``holdout`` patterns (``fnmatch``, case-sensitive, on the
file name) are never loaded; :data:`DEFAULT_HOLDOUT` lists the clips and photos reserved for
evaluation in this project.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import UserError

__all__ = [
    "DEFAULT_HOLDOUT",
    "DEFAULT_EXCLUDE",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ImageCropDataset",
    "list_media",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".avi", ".mkv", ".mov", ".webm", ".y4m")

#: Files reserved for evaluation (never trained on): the test clips of the evaluation protocol
#: (``benchmarks/protocol.yaml``: cityCC0, tree, box, cup), bikes (whose frames picked earlier
#: defaults), the held-out clips of ``benchmarks/heldout.yaml`` (``docs/eval_data.md``) and six
#: photos.
DEFAULT_HOLDOUT: tuple[str, ...] = (
    "bikes.mp4",
    "cityCC0.mpg",
    "tree.avi",
    "box.mp4",
    "cup.mp4",
    "forensics_dog.mp4",
    "imageio_cockatoo.mp4",
    "imageio_realshort.mp4",
    "extendedview_diver.mov",
    "nodeopencv_coin.mov",
    "mecavideo_ball_bounce.mp4",
    "mecavideo_ball_drop.avi",
    "visp_cube.mpeg",
    "hug_lego.mp4",
    "dlib_juice.mkv",
    "Fossa_by_Jasper_Roks.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg",
    "astronaut.png",
    "chelsea.png",
)

#: Files that are neither trained on nor evaluated (degraded copies of other files).
DEFAULT_EXCLUDE: tuple[str, ...] = ("*_distorted.*",)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def list_media(root: str | os.PathLike, *, holdout: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Path]:
    """Sorted image and video files under ``root`` (recursively), minus hidden and matched ones.

    Args:
        root: Folder to scan. Hidden files and folders (name starting with ``.``) are skipped.
        holdout: File-name patterns to leave out (evaluation data).
        exclude: More file-name patterns to leave out.

    Returns:
        Paths sorted by their path relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
                continue
            if _matches(name, holdout) or _matches(name, exclude):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _resize(arr: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = arr.shape[:2]
    im = Image.fromarray(arr).resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8).copy()


def _load_video_frames(path: Path, stride: int, max_frames: int | None) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % stride:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames


@dataclass(frozen=True)
class _Source:
    path: str
    index: int  # frame index (videos) or scale divisor (images)


class ImageCropDataset:
    """In-memory random-crop sampler over a folder of images and videos.

    Every image is one entry (two entries, at 1/2 and 1/4 scale, when wider than
    ``large_width``); every ``video_stride``-th frame of a video is one entry. An entry is drawn
    with probability proportional to its pixel area (uniform over pixels), except that the
    frames of one video together weigh as much as ``video_weight`` frames (consecutive frames
    are nearly duplicates). Entries smaller than ``size`` in either dimension are dropped.

    Args:
        root: Folder scanned recursively (see :func:`list_media`).
        size: Crop side in pixels.
        seed: Base seed; batch ``k`` depends only on ``(seed, k)``.
        holdout: File-name patterns never loaded (default :data:`DEFAULT_HOLDOUT`).
        exclude: Further patterns never loaded (default :data:`DEFAULT_EXCLUDE`).
        video_stride: Keep every ``video_stride``-th frame of videos.
        large_width: Images wider than this are stored at 1/2 and 1/4 scale instead of full size.
        video_weight: Total sampling weight of a video, in frames (see above).
        max_frames_per_video: Optional cap on the frames kept per video.
        flip: Random horizontal flips.
        rotate: Random rotations by multiples of 90 degrees (off by default, so earlier runs keep
            their data order).
        verbose: Print one line per loaded file.

    Attributes:
        arrays: The decoded ``(H, W, 3)`` uint8 arrays.
        sources: ``(path, frame index or scale divisor)`` for each array.
        files: The files that were loaded.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int = 64,
        *,
        seed: int = 0,
        holdout: Sequence[str] = DEFAULT_HOLDOUT,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        video_stride: int = 4,
        large_width: int = 1500,
        video_weight: float = 8.0,
        max_frames_per_video: int | None = None,
        flip: bool = True,
        rotate: bool = False,
        verbose: bool = False,
    ):
        if size < 1:
            raise UserError(f"crop size must be positive, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.flip = flip
        self.rotate = rotate
        self.files = list_media(root, holdout=holdout, exclude=exclude)
        if not self.files:
            raise UserError(f"no images or videos found in {root}")
        self.arrays: list[np.ndarray] = []
        self.sources: list[_Source] = []
        weights: list[float] = []
        for path in self.files:
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                try:
                    frames = _load_video_frames(path, video_stride, max_frames_per_video)
                except Exception as exc:  # PyAV raises many error types
                    raise UserError(f"cannot decode video {path}: {exc}".splitlines()[0]) from None
                frames = [f for f in frames if min(f.shape[:2]) >= size]
                for k, f in enumerate(frames):
                    self.arrays.append(f)
                    self.sources.append(_Source(str(path), k * video_stride))
                    weights.append(f.shape[0] * f.shape[1] * video_weight / max(len(frames), 1))
            else:
                try:
                    img = _load_image(path)
                except Exception as exc:
                    raise UserError(f"cannot read image {path}: {exc}".splitlines()[0]) from None
                scaled = [(2, _resize(img, 2)), (4, _resize(img, 4))] if img.shape[1] > large_width else [(1, img)]
                for factor, arr in scaled:
                    if min(arr.shape[:2]) < size:
                        continue
                    self.arrays.append(arr)
                    self.sources.append(_Source(str(path), factor))
                    weights.append(float(arr.shape[0] * arr.shape[1]))
            if verbose:
                print(f"[data] {path.name}: {sum(1 for s in self.sources if s.path == str(path))} entries", flush=True)
        if not self.arrays:
            raise UserError(f"no image in {root} is at least {size}x{size} pixels")
        w = np.asarray(weights, dtype=np.float64)
        self.probs = w / w.sum()

    def __len__(self) -> int:
        """Number of stored entries (images, image scales and video frames)."""
        return len(self.arrays)

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded arrays."""
        return sum(a.nbytes for a in self.arrays)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def batch(self, index: int, batch_size: int, crop: int | None = None) -> torch.Tensor:
        """Crops of batch number ``index`` (deterministic in ``(seed, index)``).

        Args:
            index: Batch number.
            batch_size: Number of crops.
            crop: Crop side (default and at most :attr:`size`; multi-scale training draws
                smaller crops from the same entries).

        Returns:
            ``(batch_size, 3, crop, crop)`` float32 tensor in ``[0, 1]``.
        """
        s = self.size if crop is None else int(crop)
        if not 1 <= s <= self.size:
            raise UserError(f"crop {s} must lie in [1, {self.size}] (the dataset's size)")
        rng = self._rng(index)
        picks = rng.choice(len(self.arrays), size=batch_size, p=self.probs)
        out = np.empty((batch_size, s, s, 3), dtype=np.uint8)
        for i, j in enumerate(picks):
            arr = self.arrays[j]
            h, w = arr.shape[:2]
            y = int(rng.integers(0, h - s + 1))
            x = int(rng.integers(0, w - s + 1))
            patch = arr[y : y + s, x : x + s]
            if self.flip and rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rotate:  # with flips: all 8 symmetries of the square
                patch = np.rot90(patch, int(rng.integers(4)))
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()

    def batches(self, batch_size: int, start: int = 0) -> Iterator[torch.Tensor]:
        """Endless iterator over :meth:`batch` ``start, start + 1, ...``."""
        index = start
        while True:
            yield self.batch(index, batch_size)
            index += 1

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Endless iterator over single crops ``(3, size, size)`` (batch size 1)."""
        for b in self.batches(1):
            yield b[0]
