"""Fréchet Video Distance (Unterthiner et al. 2018, "Towards Accurate Generative Models of Video").

FVD is the Fréchet distance between Gaussians fitted to I3D features of real and generated
videos. vidrestore ships no I3D weights and downloads nothing: :func:`i3d_features` takes the
TorchScript I3D detector that LGC-VD's evaluation uses (stylegan-v's ``i3d_torchscript.pt``,
which the user must provide). The preprocessing follows the FVD evaluation of the released
LGC-VD code (``exisas/LGC-VD``; Yang et al., IJCAI 2023): bilinear resize so the short side is
224, centre crop 224x224, values in ``[-1, 1]``. That detector's call signature
(``rescale``/``resize``/``return_features`` keywords) is taken from the stylegan-v code and is
UNVERIFIED here (the detector's weights are not bundled).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["frechet_distance", "gaussian_stats", "load_i3d", "i3d_features", "fvd"]


def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and (unbiased) covariance ``[D, D]`` of features ``[N, D]`` in float64."""
    f = np.asarray(torch.as_tensor(features).detach().cpu().double().numpy())
    if f.ndim != 2 or f.shape[0] < 2:
        raise UserError(f"features must be [N >= 2, D], got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})``.

    ``Tr((S1 S2)^{1/2})`` is computed as ``Tr((S1^{1/2} S2 S1^{1/2})^{1/2})`` (a symmetric PSD
    matrix with the same eigenvalues), using symmetric eigendecompositions in float64, so no
    complex square roots appear.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def load_i3d(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a user-provided TorchScript I3D detector (a trusted local file)."""
    if not os.path.isfile(path):
        raise UserError(f"I3D TorchScript file not found: {path}")
    return torch.jit.load(str(path), map_location=device).eval()


@torch.no_grad()
def i3d_features(detector, videos: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """I3D features ``[N, D]`` of videos ``(N, 3, T, H, W)`` in ``[0, 1]`` (grey inputs are replicated)."""
    if videos.shape[1] == 1:
        videos = videos.expand(-1, 3, -1, -1, -1)
    feats = []
    for i in range(0, videos.shape[0], batch):
        v = videos[i : i + batch].float()
        n, c, t, h, w = v.shape
        s = 224 / min(h, w)
        frames = v.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        frames = F.interpolate(frames, size=(max(224, round(h * s)), max(224, round(w * s))), mode="bilinear", align_corners=False)
        hh, ww = frames.shape[-2:]
        top, left = (hh - 224) // 2, (ww - 224) // 2
        frames = frames[:, :, top : top + 224, left : left + 224]
        v = frames.reshape(n, t, c, 224, 224).permute(0, 2, 1, 3, 4) * 2 - 1
        feats.append(detector(v, rescale=False, resize=False, return_features=True).cpu())
    return torch.cat(feats)


def fvd(detector, real: torch.Tensor, fake: torch.Tensor) -> float:
    """FVD between two sets of videos ``(N, 3, T, H, W)`` in ``[0, 1]``."""
    mu1, s1 = gaussian_stats(i3d_features(detector, real))
    mu2, s2 = gaussian_stats(i3d_features(detector, fake))
    return frechet_distance(mu1, s1, mu2, s2)
