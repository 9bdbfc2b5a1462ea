"""ADM UNet: the denoiser of OpenAI's *guided-diffusion*.

Re-implementation of the "ablated diffusion model" (ADM) UNet of

    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis",
    NeurIPS 2021 (arXiv:2105.05233),

which extends the improved-DDPM UNet (Nichol & Dhariwal, "Improved Denoising Diffusion
Probabilistic Models", ICML 2021) with BigGAN-style up/down-sampling residual blocks,
adaptive group normalisation ("scale-shift norm") and multi-head attention at several
resolutions.

The module layout (and hence every state-dict key) follows the reference implementation
in ``openai/guided-diffusion`` (``guided_diffusion/unet.py``, class ``UNetModel``) so that
its released checkpoints (e.g. ``256x256_diffusion_uncond.pt`` used by SVI and the DPS
``ffhq_10m.pt``) load with ``strict=True`` and give the same outputs. The module tree is::

    time_embed.{0,2}                 Linear -> SiLU -> Linear on the sinusoidal embedding
    label_emb                        Embedding (only when ``num_classes`` is set)
    input_blocks.{i}.{j}             stem conv, then [ResBlock (+ AttentionBlock)] and
                                     Downsample / down-ResBlock per level
    middle_block.{0,1,2}             ResBlock, AttentionBlock, ResBlock
    output_blocks.{i}.{j}            [ResBlock (+ AttentionBlock) (+ Upsample / up-ResBlock)]
    out.{0,2}                        GroupNorm -> SiLU -> conv

All self-attention goes through :meth:`AttentionBlock.attention`, a parameter-free
:class:`QKVAttention` module with a documented token layout, so that features such as
token merging (DiffIR2VR-Zero) can wrap or replace it without touching the weights.

``use_fp16`` is accepted (and recorded) for compatibility: upstream casts the torso to
float16 for GPU inference. Here the network always runs in the dtype of its parameters
(float32 by default); the flag changes neither the keys nor the computation.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _grad_checkpoint

__all__ = [
    "ADMUNet",
    "ADM_PRESETS",
    "AttentionBlock",
    "QKVAttention",
    "ResBlock",
    "adm_from_flags",
    "timestep_embedding",
]


# --------------------------------------------------------------------------------------
# Small building blocks
# --------------------------------------------------------------------------------------


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep embedding (Vaswani et al. 2017; Ho et al. 2020).

    The first half of the channels are cosines and the second half sines, with
    frequencies ``max_period ** (-i / (dim // 2))``, matching guided-diffusion.

    Args:
        timesteps: ``[N]`` tensor of (possibly fractional) timesteps.
        dim: Embedding width.
        max_period: Controls the lowest frequency.

    Returns:
        ``[N, dim]`` float32 tensor.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    args = timesteps.reshape(-1, 1).float() * freqs.reshape(1, -1)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm evaluated in float32 and cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.float()).to(x.dtype)


def _norm(channels: int) -> GroupNorm32:
    # guided-diffusion always uses 32 groups.
    return GroupNorm32(32, channels)


def _conv(dims: int, *args: Any, **kwargs: Any) -> nn.Module:
    if dims == 1:
        return nn.Conv1d(*args, **kwargs)
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    if dims == 3:
        return nn.Conv3d(*args, **kwargs)
    raise ValueError(f"unsupported dims: {dims} (expected 1, 2 or 3)")


def _avg_pool(dims: int, kernel: Any) -> nn.Module:
    if dims == 1:
        return nn.AvgPool1d(kernel, stride=kernel)
    if dims == 2:
        return nn.AvgPool2d(kernel, stride=kernel)
    if dims == 3:
        return nn.AvgPool3d(kernel, stride=kernel)
    raise ValueError(f"unsupported dims: {dims} (expected 1, 2 or 3)")


def _zeroed(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.detach().zero_()
    return module


class TimestepBlock(nn.Module):
    """Marker base class: ``forward(x, emb)`` also receives the timestep embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class TimestepSequential(nn.Sequential):
    """``nn.Sequential`` that passes the embedding to :class:`TimestepBlock` children."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling (inner two dims for ``dims=3``), optional 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.dims = dims
        if use_conv:
            self.conv = _conv(dims, channels, self.out_channels, 3, padding=1)
        else:
            self.conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.dims == 3:
            x = F.interpolate(x, (x.shape[2], x.shape[3] * 2, x.shape[4] * 2), mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class Downsample(nn.Module):
    """2x downsampling by a strided 3x3 conv or by average pooling."""

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        stride = 2 if dims != 3 else (1, 2, 2)
        if use_conv:
            self.op = _conv(dims, channels, self.out_channels, 3, stride=stride, padding=1)
        else:
            if self.out_channels != channels:
                raise ValueError("pooling downsample cannot change the channel count")
            self.op = _avg_pool(dims, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding.

    ``h = conv(SiLU(GN(x)))``; the embedding is added (or, with ``use_scale_shift_norm``,
    applied as ``GN(h) * (1 + scale) + shift`` — adaptive GroupNorm, Dhariwal & Nichol
    2021 Sec. 3); then ``conv(dropout(SiLU(.)))`` with a zero-initialised last conv. With
    ``up``/``down`` the block resamples both paths (BigGAN-style, Brock et al. 2019).

    Args:
        channels: Input channels.
        emb_channels: Timestep-embedding width.
        dropout: Dropout rate before the last conv.
        out_channels: Output channels (default ``channels``).
        use_conv: Use a 3x3 (instead of 1x1) conv on the skip path when channels change.
        use_scale_shift_norm: Adaptive GroupNorm conditioning.
        dims: Spatial dimensionality (1, 2 or 3).
        use_checkpoint: Gradient checkpointing during training.
        up: Upsample by 2 inside the block.
        down: Downsample by 2 inside the block.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_conv: bool = False,
        use_scale_shift_norm: bool = False,
        dims: int = 2,
        use_checkpoint: bool = False,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_checkpoint = use_checkpoint
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            _norm(channels), nn.SiLU(), _conv(dims, channels, self.out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd: nn.Module = Upsample(channels, False, dims)
            self.x_upd: nn.Module = Upsample(channels, False, dims)
        elif down:
            self.h_upd = Downsample(channels, False, dims)
            self.x_upd = Downsample(channels, False, dims)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * self.out_channels if use_scale_shift_norm else self.out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            _norm(self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            _zeroed(_conv(dims, self.out_channels, self.out_channels, 3, padding=1)),
        )
        if self.out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        elif use_conv:
            self.skip_connection = _conv(dims, channels, self.out_channels, 3, padding=1)
        else:
            self.skip_connection = _conv(dims, channels, self.out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return _grad_checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[2](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)
        e = e.reshape(e.shape + (1,) * (h.ndim - e.ndim))
        if self.use_scale_shift_norm:
            scale, shift = torch.chunk(e, 2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class QKVAttention(nn.Module):
    """Parameter-free multi-head scaled dot-product attention: the attention hook.

    Token layout: ``q``, ``k`` and ``v`` are ``(N, heads, L, d)`` where ``N`` is the batch
    (for per-frame video processing, ``B*T`` frames), ``L`` the number of spatial tokens
    (``H*W`` positions of the feature map flattened in row-major order, i.e. token
    ``i = y * W + x``; ``T*H*W`` for ``dims=3``) and ``d`` the channels per head. The
    output has the layout of ``v`` with ``L`` equal to the query length: ``(N, heads, Lq, d)``.

    Wrappers (e.g. token merging, Bolya & Hoffman 2023, as used by DiffIR2VR-Zero) may
    replace ``AttentionBlock.attention`` by any module with this signature; key/value
    sequences may be shorter than the query sequence.
    """

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Return ``softmax(q k^T / sqrt(d)) v`` per head."""
        d = q.shape[-1]
        # Scale q and k by d**-1/4 each (as upstream does, for fp16 stability), softmax in fp32.
        s = 1.0 / math.sqrt(math.sqrt(d))
        w = torch.matmul(q * s, (k * s).transpose(-1, -2))
        w = torch.softmax(w.float(), dim=-1).to(w.dtype)
        return torch.matmul(w, v)


class AttentionBlock(nn.Module):
    """Spatial self-attention block: ``x + proj_out(attention(qkv(GN(x))))``.

    Args:
        channels: Feature channels.
        num_heads: Number of heads (used when ``num_head_channels == -1``).
        num_head_channels: Channels per head; overrides ``num_heads`` when not ``-1``.
        use_checkpoint: Gradient checkpointing during training.
        use_new_attention_order: Split the qkv projection into q/k/v before splitting heads
            (upstream ``QKVAttention``); otherwise heads first (``QKVAttentionLegacy``).
            Only the interpretation of the ``qkv`` weight rows differs.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_checkpoint: bool = False,
        use_new_attention_order: bool = False,
    ):
        super().__init__()
        self.channels = channels
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"channels {channels} not divisible by num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {self.num_heads}")
        self.use_checkpoint = use_checkpoint
        self.new_order = use_new_attention_order
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention: nn.Module = QKVAttention()
        self.proj_out = _zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return _grad_checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def split_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(N, 3*C, L)`` projection -> ``q, k, v`` each ``(N, heads, L, C/heads)``."""
        n, width, length = qkv.shape
        heads = self.num_heads
        ch = width // (3 * heads)
        if self.new_order:
            parts = qkv.reshape(n, 3, heads, ch, length).unbind(1)
        else:
            parts = qkv.reshape(n, heads, 3, ch, length).unbind(2)
        q, k, v = (p.transpose(-1, -2) for p in parts)
        return q, k, v

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, *spatial = x.shape
        x = x.reshape(n, c, -1)
        q, k, v = self.split_qkv(self.qkv(self.norm(x)))
        h = self.attention(q, k, v)  # (N, heads, L, d)
        h = h.transpose(-1, -2).reshape(n, c, -1)
        h = self.proj_out(h)
        return (x + h).reshape(n, c, *spatial)


# --------------------------------------------------------------------------------------
# The UNet
# --------------------------------------------------------------------------------------


class ADMUNet(nn.Module):
    """The guided-diffusion UNet (Dhariwal & Nichol 2021), key-compatible with upstream.

    Args:
        image_size: Nominal training resolution (recorded only; any size divisible by
            ``2 ** (len(channel_mult) - 1)`` works).
        in_channels: Input channels.
        model_channels: Base width.
        out_channels: Output channels (``2 * in_channels`` for models that learn sigma).
        num_res_blocks: Residual blocks per level (the decoder uses one more).
        attention_resolutions: Downsample rates (1, 2, 4, ...) at which self-attention is
            applied, as upstream ``UNetModel`` takes them (``image_size // resolution``).
        dropout: Dropout rate inside residual blocks.
        channel_mult: Width multiplier per level.
        conv_resample: Learned convs for up/down-sampling (else nearest / average pool).
        dims: 1, 2 or 3 spatial dimensions.
        num_classes: Class-conditional with this many classes when set.
        use_checkpoint: Gradient checkpointing (training memory saver).
        use_fp16: Recorded only; the network runs in its parameters' dtype (see module doc).
        num_heads: Attention heads when ``num_head_channels == -1``.
        num_head_channels: Fixed channels per head (overrides ``num_heads``).
        num_heads_upsample: Heads in the decoder (``-1``: same as ``num_heads``).
        use_scale_shift_norm: Adaptive GroupNorm conditioning in residual blocks.
        resblock_updown: Residual blocks for resampling (BigGAN style).
        use_new_attention_order: Split qkv before heads (see :class:`AttentionBlock`).

    Attributes:
        config: The constructor keyword arguments (JSON-friendly), for saving.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int = 3,
        model_channels: int = 128,
        out_channels: int = 3,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (),
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
    ):
        super().__init__()
        attention_resolutions = tuple(int(a) for a in attention_resolutions)
        channel_mult = tuple(channel_mult)
        self.config: dict[str, Any] = dict(
            image_size=int(image_size),
            in_channels=int(in_channels),
            model_channels=int(model_channels),
            out_channels=int(out_channels),
            num_res_blocks=int(num_res_blocks),
            attention_resolutions=list(attention_resolutions),
            dropout=float(dropout),
            channel_mult=list(channel_mult),
            conv_resample=bool(conv_resample),
            dims=int(dims),
            num_classes=None if num_classes is None else int(num_classes),
            use_checkpoint=bool(use_checkpoint),
            use_fp16=bool(use_fp16),
            num_heads=int(num_heads),
            num_head_channels=int(num_head_channels),
            num_heads_upsample=int(num_heads_upsample),
            use_scale_shift_norm=bool(use_scale_shift_norm),
            resblock_updown=bool(resblock_updown),
            use_new_attention_order=bool(use_new_attention_order),
        )
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_classes = num_classes
        self.channel_mult = channel_mult
        self.attention_resolutions = attention_resolutions
        self.num_levels = len(channel_mult)

        emb_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_dim)

        def res(cin: int, cout: int, up: bool = False, down: bool = False) -> ResBlock:
            return ResBlock(
                cin,
                emb_dim,
                dropout,
                out_channels=cout,
                dims=dims,
                use_checkpoint=use_checkpoint,
                use_scale_shift_norm=use_scale_shift_norm,
                up=up,
                down=down,
            )

        def attn(c: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                c,
                num_heads=heads,
                num_head_channels=num_head_channels,
                use_checkpoint=use_checkpoint,
                use_new_attention_order=use_new_attention_order,
            )

        ch = stem_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepSequential(_conv(dims, in_channels, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                cout = int(mult * model_channels)
                layers: list[nn.Module] = [res(ch, cout)]
                ch = cout
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, dims, ch)
                self.input_blocks.append(TimestepSequential(down))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(res(ch, ch), attn(ch, num_heads), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                cout = int(mult * model_channels)
                layers = [res(ch + skip_chans.pop(), cout)]
                ch = cout
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample, dims, ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(
            _norm(ch), nn.SiLU(), _zeroed(_conv(dims, stem_ch, out_channels, 3, padding=1))
        )

    def attention_blocks(self) -> list[AttentionBlock]:
        """All :class:`AttentionBlock` modules in forward order (encoder, middle, decoder)."""
        return [m for m in self.modules() if isinstance(m, AttentionBlock)]

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the network output (e.g. noise, plus variance channels when learned).

        Args:
            x: ``[N, C, ...]`` noisy input in model space.
            timesteps: ``[N]`` (or scalar) timesteps, possibly fractional.
            y: ``[N]`` class labels; required iff the model is class-conditional.

        Returns:
            ``[N, out_channels, ...]`` raw network output.
        """
        if (y is not None) != (self.num_classes is not None):
            raise ValueError("pass y if and only if the model is class-conditional")
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(self.time_embed[0].weight.dtype))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


# --------------------------------------------------------------------------------------
# guided-diffusion script_util flags
# --------------------------------------------------------------------------------------

# Flags that describe the diffusion process rather than the network; accepted and ignored
# by :func:`adm_from_flags` so that a full guided-diffusion flag set can be passed.
_DIFFUSION_FLAGS = {
    "diffusion_steps",
    "noise_schedule",
    "timestep_respacing",
    "use_kl",
    "predict_xstart",
    "rescale_timesteps",
    "rescale_learned_sigmas",
    "model_path",
}

_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


def _parse_ints(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v.strip())
    return tuple(int(v) for v in value)


def adm_from_flags(
    image_size: int = 64,
    num_channels: int = 128,
    num_res_blocks: int = 2,
    channel_mult: str | Sequence[float] = "",
    learn_sigma: bool = False,
    class_cond: bool = False,
    use_checkpoint: bool = False,
    attention_resolutions: str | int | Sequence[int] = "16",
    num_heads: int = 1,
    num_head_channels: int = -1,
    num_heads_upsample: int = -1,
    use_scale_shift_norm: bool = False,
    dropout: float = 0.0,
    resblock_updown: bool = False,
    use_fp16: bool = False,
    use_new_attention_order: bool = False,
    **diffusion_flags: Any,
) -> ADMUNet:
    """Build an :class:`ADMUNet` from guided-diffusion ``script_util.create_model`` flags.

    ``attention_resolutions`` are feature-map sizes (``"32,16,8"``), converted to
    downsample rates ``image_size // r``. ``channel_mult=""`` picks the upstream default
    for the image size. Diffusion-only flags (``diffusion_steps``, ``noise_schedule``,
    ...) are accepted and ignored; any other unknown flag raises ``TypeError``.

    Returns:
        The network (class-conditional models use 1000 ImageNet classes, as upstream).
    """
    unknown = set(diffusion_flags) - _DIFFUSION_FLAGS
    if unknown:
        raise TypeError(f"unknown ADM flags: {sorted(unknown)}")
    if channel_mult in ("", None):
        if image_size not in _DEFAULT_CHANNEL_MULT:
            raise ValueError(f"no default channel_mult for image_size {image_size}; pass channel_mult")
        mult: tuple[float, ...] = _DEFAULT_CHANNEL_MULT[image_size]
    elif isinstance(channel_mult, str):
        mult = tuple(int(m) for m in channel_mult.split(","))
    else:
        mult = tuple(channel_mult)
    attention_ds = tuple(image_size // r for r in _parse_ints(attention_resolutions))
    return ADMUNet(
        image_size=image_size,
        in_channels=3,
        model_channels=num_channels,
        out_channels=6 if learn_sigma else 3,
        num_res_blocks=num_res_blocks,
        attention_resolutions=attention_ds,
        dropout=dropout,
        channel_mult=mult,
        num_classes=1000 if class_cond else None,
        use_checkpoint=use_checkpoint,
        use_fp16=use_fp16,
        num_heads=num_heads,
        num_head_channels=num_head_channels,
        num_heads_upsample=num_heads_upsample,
        use_scale_shift_norm=use_scale_shift_norm,
        resblock_updown=resblock_updown,
        use_new_attention_order=use_new_attention_order,
    )


#: guided-diffusion flag sets of released checkpoints (pass to :func:`adm_from_flags`).
ADM_PRESETS: dict[str, dict[str, Any]] = {
    # openai/guided-diffusion README, "256x256 model (unconditional)":
    # 256x256_diffusion_uncond.pt (also the prior used by SVI).
    "adm-imagenet256-uncond": dict(
        attention_resolutions="32,16,8",
        class_cond=False,
        diffusion_steps=1000,
        image_size=256,
        learn_sigma=True,
        noise_schedule="linear",
        num_channels=256,
        num_head_channels=64,
        num_res_blocks=2,
        resblock_updown=True,
        use_fp16=True,
        use_scale_shift_norm=True,
    ),
    # DPS2022/diffusion-posterior-sampling configs/model_config.yaml (ffhq_10m.pt).
    "adm-ffhq256": dict(
        image_size=256,
        num_channels=128,
        num_res_blocks=1,
        channel_mult="",
        learn_sigma=True,
        class_cond=False,
        use_checkpoint=False,
        attention_resolutions="16",
        num_heads=4,
        num_head_channels=64,
        num_heads_upsample=-1,
        use_scale_shift_norm=True,
        dropout=0.0,
        resblock_updown=True,
        use_fp16=False,
        use_new_attention_order=False,
    ),
}
