"""PVDNet: recurrent video deblurring with pixel volumes.

Son, Lee, Lee, Cho & Lee, "Recurrent Video Deblurring with Blur-Invariant Motion
Estimation and Pixel Volumes", ACM TOG 40(5), 2021 (arXiv 2108.09982). Written from the
paper and the layer definitions of the authors' released code (``codeslake/PVDNet``).

Per frame ``t`` (:meth:`PVDNetDeblur.step`):

1. BIMNet (:class:`~vidrestore.nets.liteflownet.LiteFlowNet`) estimates the backward flow
   ``W`` from the blurry current frame to the blurry previous frame;
2. :func:`pixel_volume` gathers 25 gray candidates per pixel from the previous *deblurred*
   frame, one per neighbouring flow vector;
3. :class:`PVDNet` maps the volume plus three blurry frames to a residual added to the
   blurry current frame.

The recurrent state is the previous output image only (:func:`deblur_frames`).

Value ranges: public functions take and return ``[0, 1]`` RGB; internally, as in the
paper's code, the pixel volume and the CNN work in ``[-1, 1]`` and BIMNet in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .liteflownet import LITEFLOWNET_PRESETS, LiteFlowNet

__all__ = ["pixel_volume", "PVDNet", "PVDNetDeblur", "PVDNET_PRESETS", "deblur_frames", "deblur_video"]

_GRAY = (0.2989, 0.5870, 0.1140)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return _GRAY[0] * x[:, 0:1] + _GRAY[1] * x[:, 1:2] + _GRAY[2] * x[:, 2:3]


def pixel_volume(prev: torch.Tensor, flow: torch.Tensor, fill: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Pixel volume ``V`` (Son et al. 2021, Sec. 4; exact rules of the released code).

    For output pixel ``p`` and offset ``d = (i, j)`` (``i`` along x, ``j`` along y, both in
    ``[-k//2, k//2]``; channel ``(i + k//2) * k + (j + k//2)``):

    * ``q = p - d`` is a neighbour of ``p``;
    * ``target = trunc(q + W(q)) + d`` (truncation toward zero, no interpolation);
    * ``V[d](p) = G(target)`` (nearest, coordinates clamped to the image), where ``G`` is
      the gray (0.2989 R + 0.5870 G + 0.1140 B) previous deblurred frame;
    * if ``target`` lies outside the *inner* image (``x`` not in ``[1, W-2]`` or ``y`` not
      in ``[1, H-2]``), ``V[d](p) = G_t(p)``, the gray *current blurry* frame (``fill``);
    * if ``q`` lies outside the image, ``V[d](p) = 0``.

    So each channel is ``p`` displaced by one neighbour's motion vector; where the flow is
    locally consistent many channels agree (the paper's "majority cue"). No parameters, no
    gradient through the indices.

    Args:
        prev: ``(B, 3, H, W)`` previous deblurred frame (any range; PVDNet uses ``[-1, 1]``).
        flow: ``(B, 2, H, W)`` backward flow current -> previous in pixels (x, y).
        fill: ``(B, 3, H, W)`` current blurry frame (same range as ``prev``).
        ksize: odd neighbourhood size ``k`` (5 in the paper).

    Returns:
        ``(B, k², H, W)``.
    """
    if ksize % 2 != 1:
        raise ValueError(f"ksize must be odd, got {ksize}")
    b, _, h, w = prev.shape
    r = ksize // 2
    g = _gray(prev).reshape(b, h * w)
    g_fill = _gray(fill)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    # Truncate toward zero (an integer cast), as the reference code does.
    tx = (xs + flow[:, 0]).trunc().long()  # (B, H, W) at q
    ty = (ys + flow[:, 1]).trunc().long()
    out = []
    for i in range(-r, r + 1):
        for j in range(-r, r + 1):
            x0, y0 = tx + i, ty + j
            invalid = (x0 < 1) | (x0 > w - 2) | (y0 < 1) | (y0 > h - 2)
            idx = y0.clamp(0, h - 1) * w + x0.clamp(0, w - 1)
            val = torch.gather(g, 1, idx.reshape(b, -1)).view(b, 1, h, w)  # value at q (not yet shifted)
            inv = invalid.to(val.dtype).unsqueeze(1)
            # Shift by d: position p reads q = p - d; zero where q is outside the image.
            val = F.pad(val, (r, r, r, r))[:, :, r - j : r - j + h, r - i : r - i + w]
            inv = F.pad(inv, (r, r, r, r))[:, :, r - j : r - j + h, r - i : r - i + w]
            out.append(val * (1 - inv) + g_fill * inv)
    return torch.cat(out, 1)


class _RB(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(), nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU())

    def forward(self, x):
        return x + self.body(x)


#: ``normal``: the paper's network (5,132,579 parameters); ``large``: PVDNet_large
#: (17,979,811); ``medium`` (1,875,395) and ``small`` (219,443): narrower variants for CPU
#: inference (see the shipped model card); ``medium-res4``: ``medium`` with the paper's 12
#: residual blocks at 1/4 resolution instead of 6 (2,871,875; the extra compute is at 1/16
#: of the pixels).
PVDNET_PRESETS: dict[str, dict] = {
    "normal": {"pv_ch": 64, "img_ch": 32, "ch": 64, "mid_ch": 128, "low_ch": 128, "num_blocks": 12},
    "large": {"pv_ch": 64, "img_ch": 32, "ch": 64, "mid_ch": 128, "low_ch": 192, "num_blocks": 24},
    "medium": {"pv_ch": 32, "img_ch": 32, "ch": 48, "mid_ch": 96, "low_ch": 96, "num_blocks": 6},
    "medium-res4": {"pv_ch": 32, "img_ch": 32, "ch": 48, "mid_ch": 96, "low_ch": 96, "num_blocks": 12},
    "small": {"pv_ch": 16, "img_ch": 16, "ch": 24, "mid_ch": 32, "low_ch": 32, "num_blocks": 3},
}


class PVDNet(nn.Module):
    """The deblurring CNN of PVDNet (Son et al. 2021), predicting a residual.

    Layers (normal config): pixel-volume features (2 conv3, 25->64), image features (2 conv3,
    9->32), ``d0`` conv5 96->64, ``d1`` (conv5 s2 + conv5), ``temp`` (conv5 s2 + conv5) at
    1/4 resolution, ``num_blocks`` residual blocks, a long skip, two transposed-conv
    up-steps with skips from ``d1`` and ``d0``, and a final conv5 to 3 channels.
    Xavier-uniform initialisation, zero biases.

    Args:
        pv_ch, img_ch: feature widths of the pixel-volume and image branches.
        ch: width at 1/1 and 1/2 resolution.
        mid_ch, low_ch: widths of the two ``temp`` convs (1/4 resolution uses ``low_ch``).
        num_blocks: residual blocks at 1/4 resolution.
        pv_size: pixel-volume side ``k`` (input channels ``k²``).
    """

    def __init__(self, pv_ch=64, img_ch=32, ch=64, mid_ch=128, low_ch=128, num_blocks=12, pv_size=5):
        super().__init__()
        self.config = {"pv_ch": pv_ch, "img_ch": img_ch, "ch": ch, "mid_ch": mid_ch, "low_ch": low_ch, "num_blocks": num_blocks, "pv_size": pv_size}
        relu = nn.ReLU
        self.pv_dec = nn.Sequential(nn.Conv2d(pv_size**2, pv_ch, 3, 1, 1), relu(), nn.Conv2d(pv_ch, pv_ch, 3, 1, 1), relu())
        self.img_dec = nn.Sequential(nn.Conv2d(9, img_ch, 3, 1, 1), relu(), nn.Conv2d(img_ch, img_ch, 3, 1, 1), relu())
        self.d0 = nn.Conv2d(pv_ch + img_ch, ch, 5, 1, 2)
        self.d1 = nn.Sequential(nn.Conv2d(ch, ch, 5, 2, 2), relu(), nn.Conv2d(ch, ch, 5, 1, 2))
        self.temp = nn.Sequential(nn.Conv2d(ch, mid_ch, 5, 2, 2), relu(), nn.Conv2d(mid_ch, low_ch, 5, 1, 2), relu())
        self.rbs = nn.Sequential(*[_RB(low_ch) for _ in range(num_blocks)])
        self.rb_end = nn.Sequential(nn.Conv2d(low_ch, low_ch, 3, 1, 1), relu())
        self.up1 = nn.ConvTranspose2d(low_ch, ch, 4, 2, 1)
        self.conv1 = nn.Sequential(nn.Conv2d(ch, ch, 5, 1, 2), relu())
        self.up2 = nn.ConvTranspose2d(ch, ch, 4, 2, 1)
        self.conv2 = nn.Sequential(nn.Conv2d(ch, ch, 5, 1, 2), relu())
        self.end = nn.Conv2d(ch, 3, 5, 1, 2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, volume: torch.Tensor, cur: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Deblurred current frame.

        Args:
            volume: ``(B, k², H, W)`` pixel volume (``[-1, 1]`` values).
            cur, prev, nxt: ``(B, 3, H, W)`` blurry frames ``t``, ``t-1``, ``t+1`` in
                ``[-1, 1]``; ``H, W`` multiples of 4.

        Returns:
            ``cur + residual``, ``(B, 3, H, W)`` in ``[-1, 1]`` (not clamped).
        """
        d0 = self.d0(torch.cat((self.pv_dec(volume), self.img_dec(torch.cat((cur, prev, nxt), 1))), 1))
        d1 = self.d1(d0)
        temp = self.temp(d1)
        x = self.rb_end(self.rbs(temp)) + temp
        x = self.conv1(F.relu(self.up1(x) + d1))
        x = self.conv2(F.relu(self.up2(x) + d0))
        return cur + self.end(x)


class PVDNetDeblur(nn.Module):
    """BIMNet + pixel volume + PVDNet: one recurrent deblurring step per frame.

    Args:
        bimnet: :class:`LiteFlowNet` kwargs (or a preset name of
            :data:`~vidrestore.nets.liteflownet.LITEFLOWNET_PRESETS`).
        pvdnet: :class:`PVDNet` kwargs (or a preset name of :data:`PVDNET_PRESETS`).

    Example:
        >>> net = PVDNetDeblur("small", "small").eval()
        >>> clip = torch.rand(1, 3, 3, 64, 64)
        >>> deblur_video(net, clip).shape
        torch.Size([1, 3, 3, 64, 64])
    """

    def __init__(self, bimnet: dict | str = "full", pvdnet: dict | str = "normal"):
        super().__init__()
        bk = dict(LITEFLOWNET_PRESETS[bimnet]) if isinstance(bimnet, str) else dict(bimnet)
        pk = dict(PVDNET_PRESETS[pvdnet]) if isinstance(pvdnet, str) else dict(pvdnet)
        self.bimnet = LiteFlowNet(**bk)
        self.pvdnet = PVDNet(**pk)
        self.config = {"bimnet": self.bimnet.config, "pvdnet": self.pvdnet.config}

    def flow(self, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """BIMNet backward flow ``cur -> prev`` (``(B, 3, H, W)`` in ``[0, 1]``) in pixels."""
        return self.bimnet.estimate(cur, prev)

    def step(
        self,
        prev: torch.Tensor,
        cur: torch.Tensor,
        nxt: torch.Tensor,
        prev_out: torch.Tensor,
        flow: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One recurrent step in pixel space.

        Args:
            prev, cur, nxt: blurry frames ``t-1, t, t+1``, ``(B, 3, H, W)`` in ``[0, 1]``
                (``H, W`` multiples of 4, at least 32).
            prev_out: the previous deblurred frame (the blurry frame at ``t = 0``), ``[0, 1]``.
            flow: optional precomputed flow ``cur -> prev`` (pixels); by default BIMNet's.
                Pass zeros for the "no motion compensation" ablation.

        Returns:
            Deblurred frame ``t``, ``(B, 3, H, W)``, ``[0, 1]`` nominal range (not clamped).
        """
        if flow is None:
            flow = self.flow(cur, prev)
        m = [2.0 * v - 1.0 for v in (prev, cur, nxt, prev_out)]
        vol = pixel_volume(m[3], flow, m[1])
        out = self.pvdnet(vol, m[1], m[0], m[2])
        return (out + 1.0) / 2.0


def deblur_frames(
    net: PVDNetDeblur,
    frames: Iterable[torch.Tensor],
    *,
    zero_flow: bool = False,
    flow_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """Recurrent deblurring of a stream of frames with constant memory.

    Holds three input frames and one output frame at a time; frame ``t`` is yielded once
    frame ``t+1`` has been read. Frame indices are clamped at the ends (the first frame is
    its own predecessor and previous output; the last its own successor). Frames are
    cropped to a multiple of 4 for the network and the uncropped border is copied from the
    input.

    Args:
        net: the deblurring network (eval mode; call under ``torch.no_grad()``).
        frames: iterable of ``(B, 3, H, W)`` frames in ``[0, 1]``.
        zero_flow: ablation without motion compensation (flow = 0).
        flow_fn: optional flow estimator ``(cur, prev) -> (B, 2, H, W)`` replacing BIMNet.

    Yields:
        Deblurred frames ``(B, 3, H, W)`` clamped to ``[0, 1]``.
    """
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        return
    h, w = first.shape[-2:]
    h4, w4 = h // 4 * 4, w // 4 * 4
    if h4 < 32 or w4 < 32:
        raise ValueError(f"PVDNet needs frames of at least 32x32 pixels, got {h}x{w}")

    def crop(x):
        return x[..., :h4, :w4]

    prev, cur, full_cur = crop(first), crop(first), first
    state = cur
    pending = True
    while pending:
        try:
            nxt_full = next(it)
        except StopIteration:
            nxt_full, pending = full_cur, False
        nxt = crop(nxt_full)
        if zero_flow:
            flow = torch.zeros_like(cur[:, :2])
        elif flow_fn is not None:
            flow = flow_fn(cur, prev)
        else:
            flow = None
        out = net.step(prev, cur, nxt, state, flow=flow)
        state = out
        full = full_cur.clone()
        full[..., :h4, :w4] = out.clamp(0, 1)
        yield full
        prev, cur, full_cur = cur, nxt, nxt_full


def deblur_video(net: PVDNetDeblur, video: torch.Tensor, *, zero_flow: bool = False, callback: Callable | None = None) -> torch.Tensor:
    """Deblur a ``(B, 3, T, H, W)`` video in ``[0, 1]`` recurrently; returns the same shape.

    ``callback`` (optional) is called once per frame.
    """
    outs = []
    for out in deblur_frames(net, (video[:, :, t] for t in range(video.shape[2])), zero_flow=zero_flow):
        outs.append(out)
        if callback is not None:
            callback()
    return torch.stack(outs, 2)
