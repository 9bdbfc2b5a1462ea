"""LGC-VD: a channel-stacked 2-D UNet with local and global context.

Yang, Zhang, Liu, Jiang, He, "Video Diffusion Models with Local-Global Context Guidance",
IJCAI 2023 (arXiv 2306.02562). Written from the paper and the authors' released code
(``exisas/LGC-VD`` @ 69e5fd7); no code was copied.

* A clip of ``F`` frames (8 in the paper) is stacked along the channel axis: the denoiser is a
  plain 2-D UNet (residual blocks + self-attention, no 3-D convolution, no temporal attention)
  whose input has ``C*F`` noisy channels and whose output is the v-prediction of all ``F``
  frames (conditioning positions included).
* **Local context**: two conditioning frames plus one constant "position mask" map each,
  ``[frame_a, mask_a, frame_b, mask_b]`` (``2*(C+1)`` channels, see :func:`local_condition`),
  concatenated to the noisy input.
* **Global context**: a separate encoder (:class:`ContextEncoder`, no time embedding) maps a
  whole previous clip to a feature map at the bottleneck resolution; one cross-attention block
  at the denoiser's bottleneck attends to it.

Residual blocks and attention follow the DDPM++ style of the official code: GroupNorm with
``min(C // 4, 32)`` groups, SiLU, the time embedding added after the first convolution, and
residual sums rescaled by ``1/sqrt(2)``.

All tensors here are in **model space** (``[-1, 1]``); the conversion from pixel space happens in
the callers (training and workflows).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LGCVDUNet",
    "ContextEncoder",
    "LGCVD_PRESETS",
    "CONTEXT_MODES",
    "local_condition",
    "next_context",
    "position_mask_value",
]

_SKIP = 1.0 / math.sqrt(2.0)


def _groups(ch: int) -> int:
    """GroupNorm groups of the official code: ``min(C // 4, 32)`` (at least 1, dividing C)."""
    g = max(1, min(ch // 4, 32))
    while ch % g:
        g -= 1
    return g


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B] -> [B, dim]`` of (possibly integer) timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GN-SiLU-conv (+ time embedding) GN-SiLU-dropout-conv, shortcut, sum / sqrt(2)."""

    def __init__(self, cin: int, cout: int, temb_dim: int | None, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout) if temb_dim else None
        self.norm2 = nn.GroupNorm(_groups(cout), cout, eps=1e-6)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        # conv_shortcut=True in the official code: a 3x3 convolution when the width changes.
        self.skip = nn.Conv2d(cin, cout, 3, padding=1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.temb is not None and temb is not None:
            h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return (self.skip(x) + h) * _SKIP


class Attention(nn.Module):
    """Multi-head (cross-)attention over spatial positions, residual, sum / sqrt(2).

    Self-attention when ``context`` is ``None``. For cross-attention the queries come from ``x``
    and keys/values from ``context``; both are normalised by the **same** GroupNorm (as in the
    official code), so ``context`` must have ``x``'s channel count. The output projection starts
    at ``out_scale`` times PyTorch's default initialisation (``1e-5``: a fresh block is close to
    the identity, times 1/sqrt(2)). Everything that reaches ``context`` passes through this
    projection, so at ``1e-5`` the gradient into a context encoder is scaled down by ``1e-5`` too.
    """

    def __init__(self, ch: int, head_channels: int, out_scale: float = 1e-5):
        super().__init__()
        self.heads = max(1, ch // head_channels)
        self.norm = nn.GroupNorm(_groups(ch), ch, eps=1e-6)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        with torch.no_grad():
            self.out.weight.mul_(out_scale)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, hh, ww = x.shape
        hx = self.norm(x)
        hc = hx if context is None else self.norm(context)
        q = self.q(hx).reshape(b, self.heads, c // self.heads, -1).transpose(-1, -2)
        k = self.k(hc).reshape(b, self.heads, c // self.heads, -1).transpose(-1, -2)
        v = self.v(hc).reshape(b, self.heads, c // self.heads, -1).transpose(-1, -2)
        o = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        o = o.transpose(-1, -2).reshape(b, c, hh, ww)
        return (x + self.out(o)) * _SKIP


class _Level(nn.Module):
    """``n`` residual blocks; with ``attn``, the first ``n_attn`` (default all) are followed by self-attention."""

    def __init__(self, cin: int, cout: int, n: int, attn: bool, temb_dim: int | None, head_ch: int, dropout: float,
                 n_attn: int | None = None):
        super().__init__()
        n_attn = n if n_attn is None else n_attn
        self.blocks = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout, temb_dim, dropout) for i in range(n))
        self.attns = nn.ModuleList(Attention(cout, head_ch) if attn and i < n_attn else nn.Identity() for i in range(n))

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        for block, attn in zip(self.blocks, self.attns):
            h = attn(block(h, temb))
        return h


def _down_path(dim: int, mults: Sequence[int], n_res: int, attn_res: Sequence[int], image_size: int, temb_dim, head_ch, dropout):
    levels, downs, widths = nn.ModuleList(), nn.ModuleList(), []
    cin, res = dim, image_size
    for i, m in enumerate(mults):
        cout = dim * m
        levels.append(_Level(cin, cout, n_res, res in attn_res, temb_dim, head_ch, dropout))
        widths.append(cout)
        last = i == len(mults) - 1
        downs.append(nn.Identity() if last else nn.Conv2d(cout, cout, 3, stride=2, padding=1))
        cin = cout
        res = res if last else res // 2
    return levels, downs, widths


class ContextEncoder(nn.Module):
    """Global-context encoder ``E_seq``: a clip ``(B, C, F, H, W)`` -> ``(B, C_mid, H/2^(L-1), W/2^(L-1))``.

    The down path of the denoiser (``num_res_blocks`` residual blocks per level, self-attention at
    ``attn_resolutions``) plus a middle ResBlock-Attention-ResBlock, without time embedding.
    """

    def __init__(self, channels: int, frames: int, dim: int, dim_mults: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], image_size: int, head_channels: int, dropout: float = 0.0):
        super().__init__()
        self.conv_in = nn.Conv2d(channels * frames, dim, 3, padding=1)
        self.levels, self.downs, widths = _down_path(dim, dim_mults, num_res_blocks, attn_resolutions, image_size, None, head_channels, dropout)
        mid = widths[-1]
        self.mid1 = ResBlock(mid, mid, None, dropout)
        self.mid_attn = Attention(mid, head_channels)
        self.mid2 = ResBlock(mid, mid, None, dropout)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = clip.shape
        x = self.conv_in(clip.reshape(b, c * f, h, w))
        for level, down in zip(self.levels, self.downs):
            x = down(level(x, None))
        return self.mid2(self.mid_attn(self.mid1(x)))


class LGCVDUNet(nn.Module):
    """The LGC-VD denoiser (channel-stacked 2-D UNet) with its context encoder.

    Args:
        channels: Colour channels per frame ``C`` (3 for RGB; the bundled digits model uses 1).
        frames: Clip length ``F`` (8 in the paper: 2 conditioning + 6 new frames).
        image_size: Training resolution (only used to place attention by resolution).
        dim: Base width.
        dim_mults: Width multiplier per level (one stride-2 downsampling between levels).
        num_res_blocks: Residual blocks per down level (the up levels have one more).
        attn_resolutions: Resolutions with self-attention.
        head_channels: Channels per attention head.
        dropout: Dropout inside residual blocks.
        global_context: Build the context encoder and the bottleneck cross-attention. ``False``
            gives the "local context only" ablation.
        cond_frames: Number of local conditioning slots (2 in the paper).
        official_up_attention: Place up-path attention with the released code's indexing
            (see the comment in ``__init__``); ``True`` in the published presets so their
            parameter layout matches the released weights.
        cross_out_scale: Initial scale of the bottleneck cross-attention's output projection
            (times PyTorch's default initialisation). ``1e-5`` (the default, as for every
            attention block here) starts the block near the identity but also scales the
            gradient reaching the context encoder by ``1e-5``, so the encoder barely learns;
            ``1.0`` lets it learn from the first update.
        context_mode: How the global context of the next clip is built from the clip just made
            (:func:`next_context`, shared by training and sampling): ``"average"`` (the official
            test loop's running average ``f_k = (E(clip) + f_{k-1}) / 2``) or ``"last"``
            (``f_k = E(clip)``, the context stage-2 training shows).

    Shapes (model space ``[-1, 1]``): ``forward(x_t, t, cond, context)`` with ``x_t``
    ``(B, C, F, H, W)``, ``t`` int ``[B]`` (training timesteps 0..999), ``cond``
    ``(B, cond_frames*(C+1), H, W)`` from :func:`local_condition`, ``context`` ``(B, C_mid, h, w)``
    from :meth:`encode_context` (or ``None`` = the encoding of the fixed all-zero clip). Returns
    the v-prediction ``(B, C, F, H, W)``.
    """

    def __init__(self, channels: int = 3, frames: int = 8, image_size: int = 64, dim: int = 128,
                 dim_mults: Sequence[int] = (1, 2, 3, 4), num_res_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), head_channels: int = 128, dropout: float = 0.0,
                 global_context: bool = True, cond_frames: int = 2, official_up_attention: bool = False,
                 cross_out_scale: float = 1e-5, context_mode: str = "average"):
        super().__init__()
        if context_mode not in CONTEXT_MODES:
            raise ValueError(f"unknown context_mode {context_mode!r}; known: {', '.join(CONTEXT_MODES)}")
        self.config: dict[str, Any] = dict(
            channels=channels, frames=frames, image_size=image_size, dim=dim, dim_mults=list(dim_mults),
            num_res_blocks=num_res_blocks, attn_resolutions=list(attn_resolutions), head_channels=head_channels,
            dropout=dropout, global_context=global_context, cond_frames=cond_frames,
            official_up_attention=official_up_attention, cross_out_scale=cross_out_scale, context_mode=context_mode,
        )
        self.context_mode = context_mode
        self.channels, self.frames, self.cond_frames = channels, frames, cond_frames
        self.factor = 2 ** (len(dim_mults) - 1)
        temb = dim * 4
        self.time_mlp = nn.Sequential(nn.Linear(dim, temb), nn.GELU(), nn.Linear(temb, temb))
        self.dim = dim
        self.conv_in = nn.Conv2d(channels * frames + cond_frames * (channels + 1), dim, 3, padding=1)
        self.levels, self.downs, widths = _down_path(dim, dim_mults, num_res_blocks, attn_resolutions, image_size, temb, head_channels, dropout)
        mid = widths[-1]
        self.mid1 = ResBlock(mid, mid, temb, dropout)
        self.mid_attn = Attention(mid, head_channels)
        self.mid2 = ResBlock(mid, mid, temb, dropout)
        self.cross = Attention(mid, head_channels, out_scale=cross_out_scale) if global_context else None
        self.encoder = (
            ContextEncoder(channels, frames, dim, dim_mults, num_res_blocks, attn_resolutions, image_size, head_channels, dropout)
            if global_context else None
        )
        # Up path (as in the official code): level i concatenates its skip (width w_i) to the
        # current features (width w_i), then residual blocks map to the width of level i-1 (``dim``
        # for the top level), then a transposed stride-2 conv (none after the top level).
        # ``official_up_attention`` reproduces the released code's indexing quirk: the up level
        # handled k-th (k = 0 at the bottleneck) gets attention if the k-th *down* resolution is
        # in ``attn_resolutions`` (e.g. 64x64 instead of 32x32 for Cityscapes).
        self.up_levels, self.ups = nn.ModuleList(), nn.ModuleList()
        n_lev = len(dim_mults)
        down_res = [image_size // 2**i for i in range(n_lev)]
        for k, i in enumerate(reversed(range(n_lev))):
            cout = widths[i - 1] if i > 0 else dim
            attn = (down_res[k] if official_up_attention else down_res[i]) in attn_resolutions
            self.up_levels.append(_Level(2 * widths[i], cout, num_res_blocks + 1, attn, temb, head_channels, dropout, n_attn=num_res_blocks))
            self.ups.append(nn.ConvTranspose2d(cout, cout, 3, stride=2, padding=1, output_padding=1) if i > 0 else nn.Identity())
        self.conv_out = nn.Conv2d(dim, channels * frames, 3, padding=1)

    @property
    def global_context(self) -> bool:
        return self.encoder is not None

    def encode_context(self, clip: torch.Tensor | None, batch: int | None = None, like: torch.Tensor | None = None) -> torch.Tensor | None:
        """Global-context feature of a clip ``(B, C, F, H, W)`` in model space.

        ``clip=None`` encodes the paper's "fixed tensor" (a mid-grey clip, 0 in model space) for
        ``batch`` samples shaped like ``like`` (B, C, F, H, W). Returns ``None`` without an encoder.
        """
        if self.encoder is None:
            return None
        if clip is None:
            if like is None:
                raise ValueError("encode_context(None) needs `like` for the shape")
            clip = torch.zeros((batch or like.shape[0],) + tuple(like.shape[1:]), device=like.device, dtype=like.dtype)
        return self.encoder(clip)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, f, h, w = x_t.shape
        if c != self.channels or f != self.frames:
            raise ValueError(f"expected (B, {self.channels}, {self.frames}, H, W), got {tuple(x_t.shape)}")
        if h % self.factor or w % self.factor:
            raise ValueError(f"H and W must be multiples of {self.factor}, got {h}x{w}")
        temb = self.time_mlp(timestep_embedding(t.reshape(-1).expand(b) if t.numel() == 1 else t, self.dim))
        x = self.conv_in(torch.cat([cond, x_t.reshape(b, c * f, h, w)], dim=1))
        skips = []
        for level, down in zip(self.levels, self.downs):
            x = level(x, temb)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid_attn(self.mid1(x, temb)), temb)
        if self.cross is not None:
            if context is None:
                context = self.encode_context(None, like=x_t)
            x = self.cross(x, context)
        for level, up in zip(self.up_levels, self.ups):
            x = level(torch.cat([x, skips.pop()], dim=1), temb)
            x = up(x)
        return self.conv_out(F.silu(x)).reshape(b, c, f, h, w)


#: Ways to build the next clip's global context (see :func:`next_context`).
CONTEXT_MODES = ("average", "last")


def next_context(net: LGCVDUNet, clip: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor | None:
    """Global context for the clip that follows ``clip`` (the one place it is built).

    Yang et al. (IJCAI 2023) condition each clip on an encoding of the previous clip. Training
    (stage 2, :func:`vidrestore.train.lgcvd.two_stage_step`) and sampling
    (:mod:`vidrestore.workflows.lgcvd`) both call this function, so the model samples with the
    kind of context it was trained on.

    Args:
        net: The LGC-VD network; its ``context_mode`` picks the rule.
        clip: The clip just made (or, in training, the model's estimate of it), model space
            ``(B, C, F, H, W)``.
        previous: The context ``clip`` itself was made with (``None``: the fixed grey clip's).

    Returns:
        ``"last"``: ``E(clip)``; ``"average"``: ``(E(clip) + previous) / 2`` (the official test
        loop's running average). ``None`` for a network without global context.
    """
    if not net.global_context:
        return None
    feat = net.encode_context(clip)
    if net.context_mode == "last":
        return feat
    if previous is None:
        previous = net.encode_context(None, like=clip)
    return 0.5 * (feat + previous)


def position_mask_value(pos: int, frames: int) -> float:
    """Value of the constant position-mask map for a condition at clip position ``pos``.

    ``(pos + 1) / (F + 1)`` in pixel space (so an absent condition, ``pos = -1``, gives 0), as in
    the official code; :func:`local_condition` then maps it to model space with ``2x - 1``.
    """
    return (pos + 1) / (frames + 1)


def local_condition(clip: torch.Tensor, positions: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """Local-context tensor of LGC-VD, in model space.

    Args:
        clip: Pixel-space clip ``(B, C, F, H, W)`` in ``[0, 1]`` that holds the conditioning
            frames at their positions (other frames are ignored).
        positions: Int tensor ``(B, K)`` of clip positions in ``[0, F-1]``, or ``-1`` for an
            absent slot (all-zero frame, mask 0).
        frames: ``F`` used for the mask values (default ``clip.shape[2]``).

    Returns:
        ``(B, K*(C+1), H, W)``: ``[frame_1, mask_1, ..., frame_K, mask_K]`` mapped by ``2x - 1``,
        so an absent frame and an absent mask are both ``-1``.
    """
    b, c, f, h, w = clip.shape
    frames = f if frames is None else frames
    positions = torch.as_tensor(positions, device=clip.device).long()
    parts = []
    for k in range(positions.shape[1]):
        pos = positions[:, k]
        present = (pos >= 0).to(clip.dtype)
        idx = pos.clamp_min(0)
        frame = clip[torch.arange(b, device=clip.device), :, idx] * present[:, None, None, None]
        mask = ((pos + 1).to(clip.dtype) / (frames + 1))[:, None, None, None].expand(b, 1, h, w)
        parts += [frame, mask]
    return torch.cat(parts, dim=1) * 2.0 - 1.0


#: Published configurations (``configs/cityscape.yml``, ``bair.yml``) and the small CPU config.
LGCVD_PRESETS: dict[str, dict[str, Any]] = {
    "cityscapes128": dict(channels=3, frames=8, image_size=128, dim=128, dim_mults=[1, 2, 3, 4], num_res_blocks=2,
                          attn_resolutions=[32], head_channels=128, official_up_attention=True),
    "bair64": dict(channels=3, frames=8, image_size=64, dim=128, dim_mults=[1, 2, 3, 4], num_res_blocks=2,
                   attn_resolutions=[16], head_channels=128, official_up_attention=True),
    "digits-small": dict(channels=1, frames=8, image_size=32, dim=32, dim_mults=[1, 2, 2], num_res_blocks=1,
                         attn_resolutions=[8], head_channels=32),
    "digits-tiny": dict(channels=1, frames=8, image_size=16, dim=16, dim_mults=[1, 2], num_res_blocks=1,
                        attn_resolutions=[8], head_channels=16),
}
