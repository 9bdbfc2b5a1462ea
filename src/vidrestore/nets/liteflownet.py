"""LiteFlowNet, used as BIMNet (blur-invariant motion estimation) by PVDNet.

Architecture: Hui, Tang & Loy, "LiteFlowNet: A Lightweight Convolutional Neural Network for
Optical Flow Estimation", CVPR 2018, in the layout used by Son et al., "Recurrent Video
Deblurring with Blur-Invariant Motion Estimation and Pixel Volumes", ACM TOG 40(5), 2021
(BIMNet is this network trained with a blur-invariant loss). Written from the papers and
the published layer description; the upstream correlation is a CUDA-only CuPy kernel,
:func:`correlation` here is pure PyTorch (CPU and GPU).

Pipeline (:meth:`LiteFlowNet.forward`):

1. A shared six-level feature pyramid (1/1 ... 1/32) for both images.
2. For levels 6 -> 2 (1/32 -> 1/2): *matching* (7x7 correlation cost volume -> CNN ->
   flow increment; stride-2 correlation + grouped deconvolution at levels 2-3), *sub-pixel
   refinement* (CNN on both features and the flow) and *regularisation* (feature-driven
   local smoothing: a k x k softmax-weighted average of the flow field).
3. The 1/2-resolution flow is multiplied by 20 (training scale of the original network).

:meth:`LiteFlowNet.estimate` wraps it as PVDNet does: mod-32 crop, bilinear upsampling of
the flow (already in full-resolution pixels) and zero flow on the cropped border.

Flow convention: ``flow = net(cur, prev)`` is the *backward* flow from ``cur`` to ``prev``:
``backwarp(prev, flow) ~= cur``; channel 0 is x (to the right), channel 1 is y (down), in
pixels of the input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LiteFlowNet", "LITEFLOWNET_PRESETS", "correlation", "backwarp"]

#: Level-wise constants of the original network (index = pyramid level 2..6).
_BACKWARD_SCALE = {2: 10.0, 3: 5.0, 4: 2.5, 5: 1.25, 6: 0.625}
_KERNEL = {2: 7, 3: 5, 4: 5, 5: 3, 6: 3}

#: ``full``: the original LiteFlowNet widths (5,381,969 parameters). ``medium`` (1,454,577) and
#: ``small`` (427,649): every width divided by two and by four, for CPU inference.
LITEFLOWNET_PRESETS: dict[str, dict] = {
    "full": {"widths": (32, 32, 64, 96, 128, 192), "match": (128, 64, 32), "reg": (128, 128, 64, 64, 32, 32), "reg_feat": 128},
    "medium": {"widths": (16, 16, 32, 48, 64, 96), "match": (64, 32, 16), "reg": (64, 64, 32, 32, 16, 16), "reg_feat": 64},
    "small": {"widths": (8, 8, 16, 24, 32, 48), "match": (32, 16, 8), "reg": (32, 32, 16, 16, 8, 8), "reg_feat": 32},
}


#: Above this many gathered elements the GPU correlation loops over displacements (bounded memory).
_UNFOLD_MAX_ELEMENTS = 64 * 2**20
#: ``"auto"`` (unfold on GPUs, loop on CPUs), ``"unfold"`` or ``"loop"``.
_CORRELATION = "auto"


def correlation(first: torch.Tensor, second: torch.Tensor, max_disp: int = 3, stride: int = 1) -> torch.Tensor:
    """Correlation cost volume (FlowNet/LiteFlowNet style), pure PyTorch.

    ``out[b, (dy + D) * (2D + 1) + (dx + D), y, x] = mean_c first[b, c, s*y, s*x] *
    second[b, c, s*y + s*dy, s*x + s*dx]`` for ``dx, dy in [-D, D]`` (``D = max_disp``,
    ``s = stride``), with zeros outside ``second``. Displacements are multiplied by the
    stride, as in LiteFlowNet's kernel.

    Args:
        first, second: ``(B, C, H, W)`` feature maps.
        max_disp: maximum displacement ``D`` in (strided) pixels.
        stride: output stride ``s``.

    Returns:
        ``(B, (2D + 1)², ceil(H / s), ceil(W / s))``.
    """
    if first.shape != second.shape:
        raise ValueError(f"correlation needs equal shapes, got {tuple(first.shape)} and {tuple(second.shape)}")
    b, c, h, w = first.shape
    s, d = int(stride), int(max_disp)
    pad = d * s
    f1 = first[:, :, ::s, ::s]
    ho, wo = f1.shape[-2:]
    f2 = F.pad(second, (pad, pad, pad, pad))
    k = 2 * d + 1
    unfold = _CORRELATION == "unfold" or (_CORRELATION == "auto" and first.device.type != "cpu")
    if unfold and b * c * k * k * ho * wo <= _UNFOLD_MAX_ELEMENTS:
        # On a GPU, all displacements at once: unfold gathers the (2D+1)² shifted copies of
        # ``second`` (dilation = stride), channel order (c, dy, dx); a few large kernels instead
        # of (2D+1)² small launches. Same values and gradients as the loop (tested in float64);
        # on a CPU the loop is faster (memory traffic), so it stays there.
        windows = F.unfold(f2, kernel_size=k, dilation=s, stride=s).view(b, c, k * k, ho, wo)
        return (windows * f1[:, :, None]).mean(1)
    out = []
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            y0, x0 = pad + dy * s, pad + dx * s
            f2s = f2[:, :, y0 : y0 + h : s, x0 : x0 + w : s]
            out.append((f1 * f2s).mean(1))
    return torch.stack(out, 1)


_GRIDS: dict = {}


def backwarp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping ``out(p) = x(p + flow(p))``: bilinear, zero padding, ``align_corners=True``.

    Args:
        x: ``(B, C, H, W)``.
        flow: ``(B, 2, H, W)`` in pixels (x, y).
    """
    b, _, h, w = flow.shape
    key = (h, w, flow.device, flow.dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        gy, gx = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device), torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
        grid = torch.stack((gx, gy), 0)[None]
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        _GRIDS[key] = grid
    pos = grid + flow
    gx = 2.0 * pos[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * pos[:, 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((gx, gy), -1), mode="bilinear", padding_mode="zeros", align_corners=True)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1)


def _conv(cin: int, cout: int, k, s: int = 1, act: bool = True) -> list[nn.Module]:
    k2 = (k, k) if isinstance(k, int) else k
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k2, s, (k2[0] // 2, k2[1] // 2))]
    return layers + ([_lrelu()] if act else [])


class _Features(nn.Module):
    def __init__(self, w: tuple[int, ...]):
        super().__init__()
        self.one = nn.Sequential(*_conv(3, w[0], 7))
        self.two = nn.Sequential(*_conv(w[0], w[1], 3, 2), *_conv(w[1], w[1], 3), *_conv(w[1], w[1], 3))
        self.thr = nn.Sequential(*_conv(w[1], w[2], 3, 2), *_conv(w[2], w[2], 3))
        self.fou = nn.Sequential(*_conv(w[2], w[3], 3, 2), *_conv(w[3], w[3], 3))
        self.fiv = nn.Sequential(*_conv(w[3], w[4], 3, 2))
        self.six = nn.Sequential(*_conv(w[4], w[5], 3, 2))

    def forward(self, x):
        out = [self.one(x)]
        for m in (self.two, self.thr, self.fou, self.fiv, self.six):
            out.append(m(out[-1]))
        return out


def _level_feat(level: int, w: tuple[int, ...]) -> tuple[nn.Module, int]:
    # Level 2 features (w[1] channels) are lifted to w[2] channels by a 1x1 conv.
    if level == 2:
        return nn.Sequential(*_conv(w[1], w[2], 1)), w[2]
    return nn.Identity(), w[level - 1]


class _Matching(nn.Module):
    def __init__(self, level: int, w, match):
        super().__init__()
        self.scale = _BACKWARD_SCALE[level]
        self.feat, _ = _level_feat(level, w)
        self.upflow = None if level == 6 else nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False, groups=2)
        self.upcorr = None if level >= 4 else nn.ConvTranspose2d(49, 49, 4, 2, 1, bias=False, groups=49)
        self.main = nn.Sequential(*_conv(49, match[0], 3), *_conv(match[0], match[1], 3), *_conv(match[1], match[2], 3), *_conv(match[2], 2, _KERNEL[level], act=False))

    def forward(self, im1, im2, f1, f2, flow):
        f1, f2 = self.feat(f1), self.feat(f2)
        if flow is not None:
            flow = self.upflow(flow)
            f2 = backwarp(f2, flow * self.scale)
        if self.upcorr is None:
            corr = F.leaky_relu(correlation(f1, f2, 3, 1), 0.1)
        else:
            corr = self.upcorr(F.leaky_relu(correlation(f1, f2, 3, 2), 0.1))
            corr = corr[:, :, : f1.shape[2], : f1.shape[3]]
        return (flow if flow is not None else 0.0) + self.main(corr)


class _Subpixel(nn.Module):
    def __init__(self, level: int, w, match):
        super().__init__()
        self.scale = _BACKWARD_SCALE[level]
        self.feat, c = _level_feat(level, w)
        self.main = nn.Sequential(*_conv(2 * c + 2, match[0], 3), *_conv(match[0], match[1], 3), *_conv(match[1], match[2], 3), *_conv(match[2], 2, _KERNEL[level], act=False))

    def forward(self, im1, im2, f1, f2, flow):
        f1, f2 = self.feat(f1), self.feat(f2)
        f2 = backwarp(f2, flow * self.scale)
        return flow + self.main(torch.cat((f1, f2, flow), 1))


class _Regularization(nn.Module):
    def __init__(self, level: int, w, reg, reg_feat):
        super().__init__()
        self.scale = _BACKWARD_SCALE[level]
        self.k = k = _KERNEL[level]
        if level >= 5:
            self.feat, c = nn.Identity(), w[level - 1]
        else:
            self.feat, c = nn.Sequential(*_conv(w[level - 1], reg_feat, 1)), reg_feat
        chans = (c + 3,) + tuple(reg)
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += _conv(a, b, 3)
        self.main = nn.Sequential(*layers)
        if level >= 5:
            self.dist = nn.Sequential(nn.Conv2d(reg[-1], k * k, k, 1, k // 2))
        else:
            self.dist = nn.Sequential(nn.Conv2d(reg[-1], k * k, (k, 1), 1, (k // 2, 0)), nn.Conv2d(k * k, k * k, (1, k), 1, (0, k // 2)))
        # Initialised to ones (a plain softmax-weighted average of the neighbouring flow
        # vectors) by LiteFlowNet.reset_parameters; a random init would shrink the flow.
        self.scale_x = nn.Conv2d(k * k, 1, 1)
        self.scale_y = nn.Conv2d(k * k, 1, 1)

    def forward(self, im1, im2, f1, f2, flow):
        b = flow.shape[0]
        # Brightness error of the current flow (no gradient), mean-free flow, features.
        diff = (im1 - backwarp(im2, flow * self.scale)).square().sum(1, keepdim=True).add(1e-12).sqrt().detach()
        centred = flow - flow.reshape(b, 2, -1).mean(2).reshape(b, 2, 1, 1)
        dist = self.dist(self.main(torch.cat((diff, centred, self.feat(f1)), 1)))
        # Softmax over the k*k neighbourhood of exp(-dist²).
        dist = -dist.square()
        dist = (dist - dist.amax(1, keepdim=True)).exp()
        inv = dist.sum(1, keepdim=True).reciprocal()
        pad = (self.k - 1) // 2
        ux = F.unfold(flow[:, 0:1], self.k, padding=pad).view_as(dist)
        uy = F.unfold(flow[:, 1:2], self.k, padding=pad).view_as(dist)
        return torch.cat((self.scale_x(dist * ux) * inv, self.scale_y(dist * uy) * inv), 1)


def _bilinear_kernel(shape) -> torch.Tensor:
    """Weights of a grouped 4x4 stride-2 transposed conv doing bilinear x2 upsampling."""
    k = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return (k[:, None] * k[None]).expand(shape).clone()


class LiteFlowNet(nn.Module):
    """LiteFlowNet (Hui et al. 2018) as BIMNet of PVDNet (Son et al. 2021).

    Args:
        widths: channels of the six pyramid levels (full: 32, 32, 64, 96, 128, 192).
        match: hidden widths of the matching and sub-pixel CNNs (full: 128, 64, 32).
        reg: hidden widths of the regularisation CNN (full: 128, 128, 64, 64, 32, 32).
        reg_feat: feature width fed to the regularisation at levels 2-4 (full: 128).

    Inputs are RGB in ``[0, 1]``, no mean subtraction (as PVDNet's copy).

    Example:
        >>> net = LiteFlowNet(**LITEFLOWNET_PRESETS["small"])
        >>> net.estimate(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(self, widths=(32, 32, 64, 96, 128, 192), match=(128, 64, 32), reg=(128, 128, 64, 64, 32, 32), reg_feat: int = 128):
        super().__init__()
        widths, match, reg = tuple(int(v) for v in widths), tuple(int(v) for v in match), tuple(int(v) for v in reg)
        if len(widths) != 6 or len(match) != 3 or len(reg) != 6:
            raise ValueError("LiteFlowNet needs 6 widths, 3 match widths and 6 reg widths")
        self.config = {"widths": list(widths), "match": list(match), "reg": list(reg), "reg_feat": int(reg_feat)}
        self.features = _Features(widths)
        levels = [2, 3, 4, 5, 6]
        self.matching = nn.ModuleList([_Matching(lv, widths, match) for lv in levels])
        self.subpixel = nn.ModuleList([_Subpixel(lv, widths, match) for lv in levels])
        self.regularization = nn.ModuleList([_Regularization(lv, widths, reg, reg_feat) for lv in levels])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialisation for training from scratch (pretrained weights overwrite it).

        * Convolutions: Kaiming-normal for LeakyReLU(0.1) (He et al. 2015), zero bias.
          PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``, a gain of about
          ``1/sqrt(3)``) shrinks the features at every layer: at level 6 their std was about
          0.02, so the correlation (a *mean* of products over channels) had std ``2e-4``.
          The matching CNNs then saw an all-but-zero cost volume and learned only a constant
          flow (the BIMNet shipped first never beat zero flow). With this init the level-6
          cost volume has std about 0.03 (measured on 64x64 photo crops).
        * The last conv of every matching and sub-pixel CNN (the flow increments): normal
          with std ``1e-3``, so the network starts from (almost) zero flow instead of the
          random flows of up to about 10 px per level that Kaiming init gives there.
        * Transposed convs: bilinear x2 upsampling. Regularisation ``scale_x``/``scale_y``:
          ones (a plain softmax-weighted average of the neighbouring flow vectors).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.ConvTranspose2d):
                with torch.no_grad():
                    m.weight.copy_(_bilinear_kernel(m.weight.shape))
        for block in list(self.matching) + list(self.subpixel):
            nn.init.normal_(block.main[-1].weight, std=1e-3)
            nn.init.zeros_(block.main[-1].bias)
        for block in self.regularization:
            for m in (block.scale_x, block.scale_y):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, cur: torch.Tensor, prev: torch.Tensor, return_pyramid: bool = False):
        """Backward flow ``cur -> prev`` at 1/2 resolution, in full-resolution pixels.

        Args:
            cur, prev: ``(B, 3, H, W)`` in ``[0, 1]``, ``H`` and ``W`` multiples of 32.

            return_pyramid: also return the flows of levels 6..2 (for multi-scale losses).

        Returns:
            ``(B, 2, H/2, W/2)``; ``backwarp(prev, upsample(flow)) ~= cur``; with
            ``return_pyramid``, ``(flow, [flows at 1/32 ... 1/2])``, all in full-resolution pixels.
        """
        f1, f2 = self.features(cur), self.features(prev)
        im1, im2 = [cur], [prev]
        for lv in range(1, 6):
            size = f1[lv].shape[-2:]
            im1.append(F.interpolate(im1[-1], size=size, mode="bilinear", align_corners=False))
            im2.append(F.interpolate(im2[-1], size=size, mode="bilinear", align_corners=False))
        flow = None
        pyramid = []
        for i in (-1, -2, -3, -4, -5):
            args = (im1[i], im2[i], f1[i], f2[i])
            flow = self.matching[i](*args, flow)
            flow = self.subpixel[i](*args, flow)
            flow = self.regularization[i](*args, flow)
            pyramid.append(flow * 20.0)
        return (flow * 20.0, pyramid) if return_pyramid else flow * 20.0

    def estimate(self, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Full-resolution backward flow as PVDNet computes it.

        The inputs are cropped at the top-left to a multiple of 32, the half-resolution flow
        is upsampled bilinearly (``align_corners=False``, no rescaling: it is already in
        full-resolution pixels) and zero-padded on the right/bottom back to ``H x W``.

        Args:
            cur, prev: ``(B, 3, H, W)`` in ``[0, 1]``, ``H, W >= 32``.

        Returns:
            ``(B, 2, H, W)`` flow in pixels with ``backwarp(prev, flow) ~= cur``.
        """
        b, _, h, w = cur.shape
        h32, w32 = h // 32 * 32, w // 32 * 32
        if h32 == 0 or w32 == 0:
            raise ValueError(f"LiteFlowNet needs frames of at least 32x32 pixels, got {h}x{w}")
        flow = self.forward(cur[:, :, :h32, :w32], prev[:, :, :h32, :w32])
        flow = F.interpolate(flow, size=(h32, w32), mode="bilinear", align_corners=False)
        return F.pad(flow, (0, w - w32, 0, h - h32))
