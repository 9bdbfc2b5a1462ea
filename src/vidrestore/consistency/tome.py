"""Token merging across the frames of a batch ("replace" mode), with bounded memory.

Yeh et al., "DiffIR2VR-Zero: Zero-Shot Video Restoration with Diffusion-based Image
Restoration Models" (arXiv 2407.01519), §3.3, built on VidToMe (Li et al., CVPR 2024) and
ToMe (Bolya & Hoffman, 2023). The tokens of the ``F`` frames of a batch are joined into one
sequence (frame ``f``, token ``l`` -> joined index ``f * L + l``). The keyframe's tokens are the
destinations (dst); the tokens of the other frames are sources (src). Each src token is matched
to one dst token with a score; the ``r`` best-scored src tokens are *merged*: they are dropped
from the self-attention sequence and, after attention, receive a copy of their dst token's
output (the paper's "replacement" unmerge, Table 8). Unmerged src tokens and all dst tokens keep
their own outputs.

Self-attention has no positional encoding in the networks we patch (ADM, diffusers UNets), so
the order of the kept tokens does not matter; they stay in joined order here (the released code
orders them ``[unmerged src | dst]``).

Two correspondences (paper §3.3):

* **flow** (UNet down blocks): src token ``p`` of frame ``j`` -> keyframe token at
  ``round(p + f_j(p))`` with ``f_j`` the backward flow of frame ``j`` into the keyframe on the
  token grid; score = the forward–backward confidence (Eq. 5, max-pooled to the grid).
* **cosine** (up blocks): ``s'_ij = cos(T_i, T_j) * exp(-||X(i) - X(j)||² / R)`` (Eq. 7) between
  src token ``i`` and dst token ``j`` at grid positions ``X``; each src takes its best dst.

The cosine matching is computed in chunks of src rows (``chunk`` x ``A`` scores at a time, ``A``
dst tokens), so memory is bounded, unlike the released code's ``(F-1)·A x A`` matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["MergePlan", "build_plan", "cosine_match", "flow_match", "grid_coords"]


@dataclass
class MergePlan:
    """Which tokens of a joined ``F * L`` sequence enter attention, and where outputs go.

    Attributes:
        keep: ``(K,)`` int64 indices (ascending) of the kept tokens in the joined sequence.
        source: ``(F * L,)`` int64: joined position ``p`` receives the output of kept token
            ``source[p]`` (its own, or its dst's when merged).
        num_tokens: ``F * L``.
        num_merged: number of merged (dropped) src tokens, ``F * L - K``.
    """

    keep: torch.Tensor
    source: torch.Tensor
    num_tokens: int
    num_merged: int

    def merge(self, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Select the kept tokens along ``dim`` (length ``F * L`` -> ``K``)."""
        return x.index_select(dim, self.keep.to(x.device))

    def unmerge(self, y: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Scatter ``K`` outputs back to ``F * L`` positions (merged tokens copy their dst)."""
        return y.index_select(dim, self.source.to(y.device))


def identity_plan(num_tokens: int, device: torch.device | str | None = None) -> MergePlan:
    """Plan that keeps every token (ratio 0)."""
    idx = torch.arange(int(num_tokens), device=device)
    return MergePlan(idx, idx, int(num_tokens), 0)


def build_plan(
    num_frames: int,
    tokens_per_frame: int,
    key: int,
    src_pos: torch.Tensor,
    dst_tok: torch.Tensor,
    score: torch.Tensor,
    num_merge: int,
) -> MergePlan:
    """Merge the ``num_merge`` best-scored src tokens into their dst tokens.

    Args:
        num_frames: ``F`` frames in the batch.
        tokens_per_frame: ``L`` tokens per frame.
        key: keyframe index in ``[0, F)`` (its tokens are the destinations).
        src_pos: ``(S,)`` joined positions of the candidate src tokens (not in the keyframe).
        dst_tok: ``(S,)`` token index ``l`` in the keyframe matched to each candidate.
        score: ``(S,)`` match scores (higher merges first; ties keep candidate order).
        num_merge: ``r``, clipped to ``[0, S]``.

    Returns:
        The :class:`MergePlan`; ``K = F * L - r`` tokens are kept.
    """
    n = int(num_frames) * int(tokens_per_frame)
    device = src_pos.device
    r = max(0, min(int(num_merge), int(src_pos.numel())))
    if r == 0:
        return identity_plan(n, device)
    if not (0 <= key < num_frames):
        raise UserError(f"key index {key} outside [0, {num_frames})")
    order = torch.sort(score.float(), descending=True, stable=True).indices[:r]
    merged = src_pos[order]
    merged_dst = key * tokens_per_frame + dst_tok[order]
    keep_mask = torch.ones(n, dtype=torch.bool, device=device)
    keep_mask[merged] = False
    if not bool(keep_mask[merged_dst].all()):
        raise UserError("a merge destination is itself merged (src and dst overlap)")
    rank = torch.cumsum(keep_mask.long(), 0) - 1
    source = rank.clone()
    source[merged] = rank[merged_dst]
    keep = torch.nonzero(keep_mask, as_tuple=False).squeeze(1)
    return MergePlan(keep, source, n, r)


def grid_coords(h: int, w: int, device=None) -> torch.Tensor:
    """``(h * w, 2)`` float (y, x) coordinates of a row-major token grid."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((ys.reshape(-1), xs.reshape(-1)), 1).float()


def flow_match(
    flow: torch.Tensor,
    confidence: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow correspondence of one src frame on a token grid.

    Args:
        flow: ``(2, h, w)`` backward flow (x, y) of the src frame into the keyframe, in tokens.
        confidence: ``(h, w)`` score per src token (e.g. max-pooled flow confidence).
        valid: ``(h, w)`` bool, real (non-padding) tokens; targets are clamped into the valid
            rectangle ``[0, hv) x [0, wv)``.

    Returns:
        ``(dst_tok, score)``, each ``(h * w,)``: the keyframe token index ``y * w + x`` of
        ``round(p + flow(p))`` (clamped) and the score.
    """
    _, h, w = flow.shape
    hv = int(valid.any(1).sum())
    wv = int(valid.any(0).sum())
    c = grid_coords(h, w, flow.device)
    ty = (c[:, 0] + flow[1].reshape(-1)).round().clamp(0, max(hv - 1, 0)).long()
    tx = (c[:, 1] + flow[0].reshape(-1)).round().clamp(0, max(wv - 1, 0)).long()
    return ty * w + tx, confidence.reshape(-1).float()


def cosine_match(
    src: torch.Tensor,
    dst: torch.Tensor,
    src_xy: torch.Tensor,
    dst_xy: torch.Tensor,
    radius: float | None,
    *,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best dst token for each src token by spatially weighted cosine similarity (Eq. 7).

    ``s'_ij = cos(src_i, dst_j) * exp(-||X_i - X_j||² / R)``; the src rows are processed
    ``chunk`` at a time, so at most ``chunk x A`` scores exist at once.

    Args:
        src: ``(S, C)`` src token features.
        dst: ``(A, C)`` dst (keyframe) token features.
        src_xy, dst_xy: ``(S, 2)`` / ``(A, 2)`` grid coordinates (tokens).
        radius: ``R`` in tokens (``None`` or ``<= 0``: no spatial weight, plain cosine).
        chunk: src rows per block.

    Returns:
        ``(index, score)``: ``(S,)`` int64 argmax over dst and ``(S,)`` float32 best score.
    """
    a = F.normalize(src.float(), dim=-1)
    b = F.normalize(dst.float(), dim=-1)
    idx, best = [], []
    step = max(1, int(chunk))
    for s in range(0, a.shape[0], step):
        sim = a[s : s + step] @ b.T  # (chunk, A)
        if radius is not None and radius > 0:
            d2 = torch.cdist(src_xy[s : s + step].float(), dst_xy.float()).square()
            sim = sim * torch.exp(-d2 / float(radius))
        v, i = sim.max(dim=1)
        idx.append(i)
        best.append(v)
    return torch.cat(idx), torch.cat(best)
