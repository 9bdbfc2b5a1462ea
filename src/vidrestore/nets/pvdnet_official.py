"""The official PVDNet checkpoints as :class:`~vidrestore.nets.pvdnet.PVDNetDeblur` networks.

Son, Lee, Lee, Cho & Lee, "Recurrent Video Deblurring with Blur-Invariant Motion Estimation
and Pixel Volumes", ACM TOG 40(5), 2021. The authors' release (github.com/codeslake/PVDNet)
publishes its trained models as PyTorch state dicts:

* ``PVDNet_DVD.pytorch``, ``PVDNet_nah.pytorch`` (the paper's network) and
  ``PVDNet_large_nah.pytorch`` (the large variant): the whole deblurring model, BIMNet
  parameters under ``BIMNet.`` and the CNN's under ``PVDNet.``, possibly behind a
  ``module.`` prefix (saved from a data-parallel wrapper);
* ``BIMNet.pytorch``: the blur-invariant LiteFlowNet alone (no prefix).

This module renames those parameters to ours and infers the CNN's widths and depth from the
tensor shapes (normal: 12 residual blocks at 128 channels; large: 24 at 192), so a released
file becomes a :class:`PVDNetDeblur` that computes the paper's model with our pure-PyTorch
layers (no CUDA, no CuPy). Reading files is left to the caller (the workflows use
``torch.load(..., weights_only=True)``); everything here works on in-memory state dicts.

Parameter names, official -> ours (``i`` = list index, ``k`` = layer index):

============================================  =========================================
BIMNet ``moduleFeatures.moduleOne`` ...        ``features.one`` ... (Two, Thr, Fou, Fiv, Six)
BIMNet ``moduleMatching.i.moduleFeat``         ``matching.i.feat`` (also Upflow, Upcorr, Main)
BIMNet ``moduleSubpixel`` / ``moduleRegularization``  ``subpixel`` / ``regularization``
BIMNet ``moduleDist``, ``moduleScaleX/Y``      ``dist``, ``scale_x`` / ``scale_y``
PVDNet ``PV_dec``, ``RBs.i.k``, ``RB_end``     ``pv_dec``, ``rbs.i.body.k``, ``rb_end``
PVDNet ``dconv1``, ``dconv1_end.1``            ``up1``, ``conv1.0`` (same for 2)
============================================  =========================================
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from ..errors import UserError
from .liteflownet import LITEFLOWNET_PRESETS, LiteFlowNet
from .pvdnet import PVDNET_PRESETS, PVDNet, PVDNetDeblur

__all__ = [
    "OFFICIAL_PREFIXES", "strip_module_prefix", "split_official_state_dict", "official_bimnet_keys_to_ours",
    "official_pvdnet_keys_to_ours", "official_pvdnet_config", "official_variant", "liteflownet_from_official",
    "pvdnet_cnn_from_official", "pvdnet_from_official",
]

#: Top-level names of the official ``DeblurNet``'s two parts.
OFFICIAL_PREFIXES = ("BIMNet.", "PVDNet.")

_BIM_NAMES = {
    "moduleFeatures": "features", "moduleOne": "one", "moduleTwo": "two", "moduleThr": "thr", "moduleFou": "fou",
    "moduleFiv": "fiv", "moduleSix": "six", "moduleMatching": "matching", "moduleSubpixel": "subpixel",
    "moduleRegularization": "regularization", "moduleFeat": "feat", "moduleUpflow": "upflow", "moduleUpcorr": "upcorr",
    "moduleMain": "main", "moduleDist": "dist", "moduleScaleX": "scale_x", "moduleScaleY": "scale_y",
}

_PVD_RULES = [
    (re.compile(r"^PV_dec\."), "pv_dec."),
    (re.compile(r"^RBs\.(\d+)\."), r"rbs.\1.body."),
    (re.compile(r"^RB_end\."), "rb_end."),
    (re.compile(r"^dconv1\."), "up1."),
    (re.compile(r"^dconv2\."), "up2."),
    (re.compile(r"^dconv1_end\.1\."), "conv1.0."),
    (re.compile(r"^dconv2_end\.1\."), "conv2.0."),
]

_Tensors = Mapping[str, torch.Tensor]


def _check_tensors(state, what: str) -> None:
    if not isinstance(state, Mapping) or not state:
        raise UserError(f"{what} is not a PyTorch state dict (a mapping of parameter names to tensors)")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{what} is not a PyTorch state dict: entry {bad[0]!r} is not a named tensor")


def strip_module_prefix(state: _Tensors) -> dict[str, torch.Tensor]:
    """``state`` without the ``module.`` prefix that data-parallel wrappers add (if every key has it)."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def split_official_state_dict(state: _Tensors, what: str = "the checkpoint") -> tuple[dict | None, dict | None]:
    """``(bimnet, pvdnet)`` parts of an official state dict, their prefixes removed.

    Accepts a whole ``DeblurNet`` (``BIMNet.*`` and/or ``PVDNet.*`` keys, optionally behind
    ``module.``) or a bare ``BIMNet.pytorch`` (LiteFlowNet keys ``moduleFeatures.*`` ...).
    A missing part is ``None``.

    Raises:
        UserError: ``state`` is not a state dict, or holds neither part (one line naming ``what``).
    """
    _check_tensors(state, what)
    state = strip_module_prefix(state)
    if any(k.startswith(OFFICIAL_PREFIXES) for k in state):
        other = sorted(k for k in state if not k.startswith(OFFICIAL_PREFIXES))
        if other:
            raise UserError(f"{what} is not an official PVDNet checkpoint: unexpected key {other[0]!r}")
        parts = [{k[len(p):]: v for k, v in state.items() if k.startswith(p)} or None for p in OFFICIAL_PREFIXES]
        return parts[0], parts[1]
    if all(k.split(".")[0] in _BIM_NAMES for k in state):
        return dict(state), None
    first = sorted(state)[0]
    raise UserError(f"{what} is not an official PVDNet or BIMNet checkpoint (first key {first!r}; expected BIMNet.*, PVDNet.* or moduleFeatures.*)")


def official_bimnet_keys_to_ours(state: _Tensors) -> dict[str, torch.Tensor]:
    """Official LiteFlowNet/BIMNet parameter names -> :class:`LiteFlowNet` names (values shared)."""
    return {".".join(_BIM_NAMES.get(p, p) for p in k.split(".")): v for k, v in state.items()}


def official_pvdnet_keys_to_ours(state: _Tensors) -> dict[str, torch.Tensor]:
    """Official PVDNet CNN parameter names -> :class:`~vidrestore.nets.pvdnet.PVDNet` names."""
    out = {}
    for k, v in state.items():
        new = k
        for pattern, repl in _PVD_RULES:
            new = pattern.sub(repl, new)
        out[new] = v
    return out


def _shape(state: _Tensors, key: str, what: str) -> tuple[int, ...]:
    if key not in state:
        raise UserError(f"{what} is not an official PVDNet checkpoint: missing PVDNet.{key}")
    return tuple(state[key].shape)


def official_pvdnet_config(state: _Tensors, what: str = "the checkpoint") -> dict:
    """:class:`~vidrestore.nets.pvdnet.PVDNet` keyword arguments read off the shapes of an
    official CNN state dict (official names, ``PVDNet.`` prefix removed)."""
    pv = _shape(state, "PV_dec.0.weight", what)
    blocks = {int(m.group(1)) for k in state for m in [re.match(r"^RBs\.(\d+)\.", k)] if m}
    if len(pv) != 4 or not blocks:
        raise UserError(f"{what} is not an official PVDNet checkpoint: unexpected PV_dec/RBs layout")
    k = round(pv[1] ** 0.5)
    if k * k != pv[1]:
        raise UserError(f"{what}: pixel-volume input of {pv[1]} channels is not a square k*k")
    return {
        "pv_ch": pv[0],
        "img_ch": _shape(state, "img_dec.0.weight", what)[0],
        "ch": _shape(state, "d0.weight", what)[0],
        "mid_ch": _shape(state, "temp.0.weight", what)[0],
        "low_ch": _shape(state, "temp.2.weight", what)[0],
        "num_blocks": max(blocks) + 1,
        "pv_size": k,
    }


def official_variant(config: Mapping) -> str:
    """``"normal"`` or ``"large"`` (the two released layouts) for a CNN config, else ``"custom"``."""
    for name in ("normal", "large"):
        if {**PVDNET_PRESETS[name], "pv_size": 5} == dict(config):
            return name
    return "custom"


def _load(net: torch.nn.Module, state: dict, what: str, part: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        kind = "missing" if missing else "unexpected"
        raise UserError(f"{what}: {part} does not match the official layout ({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {kind} {key!r})")
    bad = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise UserError(f"{what}: {part} parameter {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, expected {tuple(expected[bad[0]].shape)}")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def liteflownet_from_official(state: _Tensors, what: str = "the checkpoint") -> LiteFlowNet:
    """A full-width :class:`LiteFlowNet` holding the official BIMNet parameters ``state``
    (a ``BIMNet.pytorch`` state dict, or the ``BIMNet.`` part of a whole model)."""
    net = LiteFlowNet(**LITEFLOWNET_PRESETS["full"])
    _load(net, official_bimnet_keys_to_ours(state), what, "BIMNet")
    return net.eval()


def pvdnet_cnn_from_official(state: _Tensors, what: str = "the checkpoint") -> PVDNet:
    """The deblurring CNN alone (:class:`~vidrestore.nets.pvdnet.PVDNet`) from the ``PVDNet.``
    part of an official state dict (prefix removed); widths and depth come from the shapes."""
    net = PVDNet(**official_pvdnet_config(state, what))
    _load(net, official_pvdnet_keys_to_ours(state), what, "PVDNet")
    return net.eval()


def pvdnet_from_official(state: _Tensors, bimnet: _Tensors | LiteFlowNet | None = None, what: str = "the checkpoint") -> PVDNetDeblur:
    """The official deblurring model as a :class:`PVDNetDeblur` (eval mode, float32, CPU).

    Args:
        state: an official state dict with ``PVDNet.*`` keys (and normally ``BIMNet.*``),
            with or without the ``module.`` prefix.
        bimnet: optional flow network replacing the BIMNet part of ``state`` (required when
            ``state`` has none): an official BIMNet state dict (``BIMNet.pytorch``) or a
            :class:`LiteFlowNet`.
        what: how error messages name ``state`` (e.g. its file name).

    Returns:
        The network; ``net.pretrained_config`` records ``{"source": "official", "variant":
        "normal"|"large"|"custom", "flow": "bimnet", ...}``.

    Raises:
        UserError: not an official checkpoint, missing parts, or shapes that do not fit.
    """
    bim_part, pvd_part = split_official_state_dict(state, what)
    if pvd_part is None:
        raise UserError(f"{what} holds no PVDNet.* parameters (a BIMNet alone); give the deblurring model's checkpoint")
    cnn = pvdnet_cnn_from_official(pvd_part, what)
    if isinstance(bimnet, LiteFlowNet):
        flow_net = bimnet
    else:
        if bimnet is not None:
            bim_part, _ = split_official_state_dict(bimnet, "the BIMNet checkpoint")
            if bim_part is None:
                raise UserError("the BIMNet checkpoint holds no BIMNet parameters")
        if bim_part is None:
            raise UserError(f"{what} holds no BIMNet.* parameters; give the official BIMNet.pytorch as well (--bimnet)")
        flow_net = liteflownet_from_official(bim_part, what)
    net = PVDNetDeblur(flow_net.config, cnn.config)
    net.bimnet, net.pvdnet = flow_net, cnn
    net.pretrained_config = {  # type: ignore[attr-defined]
        "class": "pvdnet_deblur", "kwargs": net.config, "source": "official", "variant": official_variant(cnn.config), "flow": "bimnet",
    }
    return net.eval()
