"""Hybrid flow-guided, spatial-aware token merging (HS-ToMe) inside a network's self-attention.

Yeh et al., DiffIR2VR-Zero (arXiv 2407.01519), §3.3. :class:`TokenMerger` holds the state
(frame batches and keyframes, flows, the current merge ratio) and :func:`token_merging` patches a
network for the duration of a ``with`` block:

* **ADM UNets** (:class:`vidrestore.nets.adm_unet.AttentionBlock`, the bundled prior): the
  parameter-free ``block.attention`` module is swapped for a merging wrapper; a forward pre-hook
  on the block records the token grid and one on ``block.qkv`` records the normalised input
  tokens (the features of the cosine matching, as in VidToMe/DiffIR2VR).
* **diffusers UNets** (``Attention`` modules without cross-attention, e.g. in ``UNet2DModel``
  or the ``attn1`` of ``BasicTransformerBlock``): an attention processor is installed with
  ``set_processor`` and the original one is put back afterwards.

Nothing is changed outside the ``with`` block, and inside it a frame batch of one frame runs
plain per-frame attention. Blocks are labelled by their place in the UNet (``down`` = encoder,
``mid``, ``up`` = decoder) from their module names; the flow correspondence is used in ``down``
blocks and the cosine one elsewhere (configurable). Only the highest-resolution attention levels
are merged: a block at downsample factor ``ds`` is merged when ``ds <= ds_min * 2 **
(levels - 1)``, ``ds_min`` being the finest attention resolution met in the forward pass (the
released code merges the latent and 1/2-latent levels, ``levels = 2``).

The networks must see every frame of the solve in one call (no ``chunk_size``), in the layout of
:func:`vidrestore.tensor.fold_time` (clip-major, then time).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..flow import resize_flow
from ..nets.adm_unet import AttentionBlock
from .tome import MergePlan, build_plan, cosine_match, flow_match, grid_coords, identity_plan

__all__ = ["FrameGroup", "TokenMerger", "token_merging"]


@dataclass
class FrameGroup:
    """One frame batch of the network call.

    Attributes:
        frames: network batch indices of the frames (``b * T + t``), in time order.
        key: position of the keyframe inside ``frames``.
        flows: ``(F, 2, H, W)`` backward flow of every frame into the keyframe (pixels of the
            valid image region; the keyframe's own entry is ignored), or ``None``.
        confidence: ``(F, 1, H, W)`` flow confidence in ``[0, 1]``, or ``None``.
    """

    frames: list[int]
    key: int
    flows: torch.Tensor | None = None
    confidence: torch.Tensor | None = None


def _label(name: str) -> str:
    n = name.replace("/", ".")
    if "input_blocks" in n or "down_blocks" in n or "down_block" in n:
        return "down"
    if "middle_block" in n or "mid_block" in n:
        return "mid"
    if "output_blocks" in n or "up_blocks" in n or "up_block" in n:
        return "up"
    return "other"


class TokenMerger:
    """State of HS-ToMe for one solve (see the module docstring).

    Args:
        groups: the frame batches (:class:`FrameGroup`); frames in no group are not merged.
        num_frames: frames per network call (``B * T``); a call with another count raises.
        valid_fraction: ``(H / Hp, W / Wp)``, the part of the network input that is real image
            (top-left), the rest being padding whose tokens are never merged.
        down_match, up_match: ``"flow"`` or ``"cos"`` correspondence in down / (mid and up)
            blocks (paper: flow / cos).
        radius: ``R`` of the spatial weight in tokens; ``None``: ``max(1, w // 30)`` per grid
            (the released code's rule); ``0``: no spatial weight.
        levels: number of finest attention resolutions to merge at (2 in the paper's code).
        chunk: src rows per block of the cosine matching (memory bound ``chunk x A``).
    """

    def __init__(
        self,
        groups: Sequence[FrameGroup],
        num_frames: int,
        *,
        valid_fraction: tuple[float, float] = (1.0, 1.0),
        down_match: str = "flow",
        up_match: str = "cos",
        radius: float | None = None,
        levels: int = 2,
        chunk: int = 1024,
    ) -> None:
        for m in (down_match, up_match):
            if m not in ("flow", "cos"):
                raise UserError(f"correspondence must be 'flow' or 'cos', got {m!r}")
        self.groups = list(groups)
        self.num_frames = int(num_frames)
        self.valid_fraction = (float(valid_fraction[0]), float(valid_fraction[1]))
        self.match = {"down": down_match, "mid": up_match, "up": up_match, "other": up_match}
        self.radius = radius
        self.levels = int(levels)
        self.chunk = int(chunk)
        self.ratio: float | None = None  # None: merging off (plain per-frame attention)
        self.input_hw: tuple[int, int] | None = None
        self.ds_min: float | None = None
        self._flow_cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.stats: dict[str, int] = {"calls": 0, "merged_calls": 0, "tokens": 0, "kept": 0}

    # -- bookkeeping ----------------------------------------------------------------------

    def set_ratio(self, ratio: float | None) -> None:
        """Set the merge ratio of the coming network calls (``None`` switches merging off)."""
        if ratio is not None and not 0.0 <= float(ratio) <= 1.0:
            raise UserError(f"merge ratio must lie in [0, 1], got {ratio}")
        self.ratio = None if ratio is None else float(ratio)

    def _record_input(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            self.input_hw = (int(x.shape[-2]), int(x.shape[-1]))
            if self.ratio is not None and x.shape[0] != self.num_frames:
                raise UserError(
                    f"token merging expects all {self.num_frames} frames in one network call, got {x.shape[0]} "
                    "(disable the prior's chunk_size)"
                )

    def grid_of(self, length: int, hw: tuple[int, int] | None) -> tuple[int, int]:
        """Token grid ``(h, w)`` of an attention call with ``length`` tokens."""
        if hw is not None:
            return hw
        if self.input_hw is None:
            raise UserError("token merging could not determine the token grid (no 4-D network input seen)")
        H, W = self.input_hw
        ds = math.sqrt(H * W / max(length, 1))
        h, w = round(H / ds), round(W / ds)
        if h * w != length:
            h, w = -(-H // round(ds)), -(-W // round(ds))
        if h * w != length:
            raise UserError(f"cannot infer a token grid for {length} tokens of a {H}x{W} input")
        return h, w

    def active(self, label: str, n: int, hw: tuple[int, int]) -> bool:
        """Whether the call of block ``label`` with ``n`` frames on grid ``hw`` is merged."""
        self.stats["calls"] += 1
        if self.ratio is None or n != self.num_frames:
            return False
        if self.input_hw is not None:
            ds = self.input_hw[0] / hw[0]
            if self.ds_min is None or ds < self.ds_min:
                self.ds_min = ds
            if ds > self.ds_min * 2 ** (self.levels - 1) + 1e-6:
                return False
        return any(len(g.frames) > 1 for g in self.groups)

    def _valid(self, h: int, w: int, device) -> torch.Tensor:
        hv = max(1, min(h, math.ceil(h * self.valid_fraction[0] - 1e-6)))
        wv = max(1, min(w, math.ceil(w * self.valid_fraction[1] - 1e-6)))
        v = torch.zeros(h, w, dtype=torch.bool, device=device)
        v[:hv, :wv] = True
        return v

    # -- correspondences ------------------------------------------------------------------

    def _flow_tokens(self, gi: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cached (src_pos, dst_tok, score) of the flow correspondence of group ``gi``."""
        k = (gi, h, w)
        if k in self._flow_cache:
            return self._flow_cache[k]
        g = self.groups[gi]
        if g.flows is None or g.confidence is None:
            raise UserError("flow correspondence requested but the frame group has no flows")
        valid = self._valid(h, w, device)
        hv, wv = int(valid.any(1).sum()), int(valid.any(0).sum())
        fl = resize_flow(g.flows.to(device=device, dtype=torch.float32), (hv, wv))
        # Max-pool the confidence to the token grid (released code: kernel = the VAE factor).
        conf = F.adaptive_max_pool2d(g.confidence.to(device=device, dtype=torch.float32), (hv, wv))
        flp = torch.zeros(fl.shape[0], 2, h, w, device=device)
        cfp = torch.zeros(fl.shape[0], 1, h, w, device=device)
        flp[:, :, :hv, :wv] = fl
        cfp[:, :, :hv, :wv] = conf
        L = h * w
        pos, dst, sc = [], [], []
        vflat = valid.reshape(-1)
        for j in range(len(g.frames)):
            if j == g.key:
                continue
            d, s = flow_match(flp[j], cfp[j, 0], valid)
            ids = torch.nonzero(vflat, as_tuple=False).squeeze(1)
            pos.append(j * L + ids)
            dst.append(d[ids])
            sc.append(s[ids])
        out = (torch.cat(pos), torch.cat(dst), torch.cat(sc))
        self._flow_cache[k] = out
        return out

    def plan(self, gi: int, label: str, hw: tuple[int, int], feats: torch.Tensor | None) -> MergePlan:
        """Merge plan of group ``gi`` for one attention call.

        Args:
            gi: group index.
            label: ``"down"``, ``"mid"``, ``"up"`` or ``"other"``.
            hw: token grid ``(h, w)``.
            feats: ``(F, L, C)`` token features of the group's frames (cosine matching).
        """
        g = self.groups[gi]
        h, w = hw
        L = h * w
        Fn = len(g.frames)
        device = feats.device if feats is not None else torch.device("cpu")
        ratio = float(self.ratio or 0.0)
        if Fn < 2:
            return identity_plan(Fn * L, device)
        mode = self.match.get(label, "cos")
        if mode == "flow" and g.flows is not None:
            src_pos, dst_tok, score = self._flow_tokens(gi, h, w, device)
        else:
            if feats is None:
                raise UserError("cosine correspondence needs token features")
            valid = self._valid(h, w, device).reshape(-1)
            ids = torch.nonzero(valid, as_tuple=False).squeeze(1)
            xy = grid_coords(h, w, device)
            src_frames = [j for j in range(Fn) if j != g.key]
            src = feats[src_frames][:, ids].reshape(-1, feats.shape[-1])
            dst = feats[g.key][ids]
            src_xy = xy[ids].repeat(len(src_frames), 1)
            radius = self.radius if self.radius is not None else max(1, w // 30)
            best, score = cosine_match(src, dst, src_xy, xy[ids], radius, chunk=self.chunk)
            dst_tok = ids[best]
            src_pos = torch.cat([j * L + ids for j in src_frames])
        r = int(ratio * src_pos.numel())
        p = build_plan(Fn, L, g.key, src_pos, dst_tok, score, r)
        self.stats["tokens"] += p.num_tokens
        self.stats["kept"] += p.num_tokens - p.num_merged
        return p


# ------------------------------------------------------------------------------------------
# ADM attention wrapper.
# ------------------------------------------------------------------------------------------


class _ADMMergeAttention(nn.Module):
    """Drop-in for ``AttentionBlock.attention`` (``(N, heads, L, d)`` q/k/v) with merging."""

    def __init__(self, inner: nn.Module, merger: TokenMerger, label: str):
        super().__init__()
        self.inner = inner
        self.merger = merger
        self.label = label
        self.hw: tuple[int, int] | None = None
        self.feats: torch.Tensor | None = None

    def pre_block(self, module: nn.Module, args: tuple) -> None:
        x = args[0]
        self.hw = (int(x.shape[-2]), int(x.shape[-1])) if x.ndim == 4 else None

    def pre_qkv(self, module: nn.Module, args: tuple) -> None:
        self.feats = args[0]  # (N, C, L): GroupNorm'd block input

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, heads, L, d = q.shape
        hw = self.hw if self.hw is not None and self.hw[0] * self.hw[1] == L else None
        m = self.merger
        if hw is None or not m.active(self.label, n, hw):
            return self.inner(q, k, v)
        m.stats["merged_calls"] += 1
        out = q.new_empty(n, heads, L, v.shape[-1])
        done = torch.zeros(n, dtype=torch.bool)
        feats = self.feats.transpose(1, 2) if self.feats is not None else None  # (N, L, C)
        for gi, g in enumerate(m.groups):
            idx = torch.tensor(g.frames, device=q.device)
            Fn = len(g.frames)
            plan = m.plan(gi, self.label, hw, None if feats is None else feats.index_select(0, idx))

            def join(t: torch.Tensor) -> torch.Tensor:  # (F, heads, L, d) -> (1, heads, F*L, d)
                return t.index_select(0, idx).permute(1, 0, 2, 3).reshape(1, heads, Fn * L, t.shape[-1])

            o = self.inner(plan.merge(join(q), 2), plan.merge(join(k), 2), plan.merge(join(v), 2))
            o = plan.unmerge(o, 2).reshape(heads, Fn, L, -1).permute(1, 0, 2, 3)
            out[idx] = o
            done[g.frames] = True
        if not bool(done.all()):
            rest = torch.nonzero(~done, as_tuple=False).squeeze(1).to(q.device)
            out[rest] = self.inner(q[rest], k[rest], v[rest])
        return out


# ------------------------------------------------------------------------------------------
# diffusers attention processor.
# ------------------------------------------------------------------------------------------


class _DiffusersMergeProcessor:
    """Self-attention processor for diffusers ``Attention`` with token merging.

    Mirrors diffusers' ``AttnProcessor2_0`` for self-attention (spatial norm, group norm, 4-D
    inputs, q/k norms, output projection, residual, rescale); the q/k/v projections run on the
    kept tokens only. Cross-attention calls, masked calls and unmerged blocks go to the
    original processor.
    """

    def __init__(self, original, merger: TokenMerger, label: str):
        self.original = original
        self.merger = merger
        self.label = label

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        m = self.merger

        def fallback():
            return self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 attention_mask=attention_mask, temb=temb, **kwargs)

        if encoder_hidden_states is not None or attention_mask is not None:
            return fallback()
        n = hidden_states.shape[0]
        hw4 = tuple(hidden_states.shape[-2:]) if hidden_states.ndim == 4 else None
        length = hw4[0] * hw4[1] if hw4 else hidden_states.shape[1]
        hw = m.grid_of(length, hw4)
        if not m.active(self.label, n, hw):
            return fallback()
        m.stats["merged_calls"] += 1
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, hh, ww = hidden_states.shape
            hidden_states = hidden_states.view(b, c, hh * ww).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        L = hidden_states.shape[1]
        outs: torch.Tensor | None = None
        groups = [(gi, g.frames) for gi, g in enumerate(m.groups) if g.frames]
        covered = {i for _, f in groups for i in f}
        rest = [i for i in range(n) if i not in covered]
        for gi, frames in groups + ([(-1, rest)] if rest else []):
            idx = torch.tensor(frames, device=hidden_states.device)
            xs = hidden_states.index_select(0, idx)  # (F, L, C)
            if gi >= 0:
                plan = m.plan(gi, self.label, hw, xs)
                xk = plan.merge(xs.reshape(-1, xs.shape[-1]), 0)[None]  # (1, K, C)
            else:
                plan, xk = None, xs
            o = self._attend(attn, xk)
            if plan is not None:
                o = plan.unmerge(o[0], 0).reshape(len(frames), L, -1)
            if outs is None:
                outs = o.new_empty(n, L, o.shape[-1])
            outs[idx] = o
        assert outs is not None
        hidden_states = outs
        if ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, hh, ww)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _attend(attn, x: torch.Tensor) -> torch.Tensor:
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        bsz = x.shape[0]
        hd = k.shape[-1] // attn.heads
        q = q.view(bsz, -1, attn.heads, hd).transpose(1, 2)
        k = k.view(bsz, -1, attn.heads, hd).transpose(1, 2)
        v = v.view(bsz, -1, attn.heads, hd).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            q = attn.norm_q(q)
        if getattr(attn, "norm_k", None) is not None:
            k = attn.norm_k(k)
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        o = o.transpose(1, 2).reshape(bsz, -1, attn.heads * hd).to(q.dtype)
        o = attn.to_out[0](o)
        return attn.to_out[1](o)


def _is_diffusers_self_attention(m: nn.Module) -> bool:
    return (
        type(m).__name__ == "Attention"
        and hasattr(m, "set_processor")
        and hasattr(m, "processor")
        and not getattr(m, "is_cross_attention", False)
        and not getattr(m, "only_cross_attention", False)
    )


@contextmanager
def token_merging(net: nn.Module, merger: TokenMerger) -> Iterator[TokenMerger]:
    """Patch the self-attention of ``net`` (ADM or diffusers) for token merging.

    Args:
        net: the network module (e.g. ``prior.net``).
        merger: the :class:`TokenMerger` whose ``ratio`` the caller updates per step.

    Yields:
        ``merger``. On exit every module is restored (hooks removed, processors reset).

    Raises:
        UserError: if ``net`` contains no supported self-attention.
    """
    handles = []
    restores = []
    n_patched = 0
    try:
        for name, mod in net.named_modules():
            if isinstance(mod, AttentionBlock):
                wrapper = _ADMMergeAttention(mod.attention, merger, _label(name))
                orig = mod.attention
                mod.attention = wrapper
                restores.append((mod, "attention", orig))
                handles.append(mod.register_forward_pre_hook(wrapper.pre_block))
                handles.append(mod.qkv.register_forward_pre_hook(wrapper.pre_qkv))
                n_patched += 1
            elif _is_diffusers_self_attention(mod):
                orig = mod.processor
                mod.set_processor(_DiffusersMergeProcessor(orig, merger, _label(name)))
                restores.append((mod, "processor", orig))
                n_patched += 1
        if n_patched == 0:
            raise UserError(f"no self-attention found in {type(net).__name__} to apply token merging to")
        handles.append(net.register_forward_pre_hook(merger._record_input))
        yield merger
    finally:
        for h in handles:
            h.remove()
        for mod, attr, orig in reversed(restores):
            if attr == "processor":
                mod.set_processor(orig)
            else:
                setattr(mod, attr, orig)
