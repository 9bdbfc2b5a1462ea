"""Read the official PVDNet release files (``restore -m pvdnet --weights FILE.pytorch``).

Son et al., "Recurrent Video Deblurring with Blur-Invariant Motion Estimation and Pixel
Volumes", ACM TOG 2021. The authors distribute their trained models (``PVDNet_DVD.pytorch``,
``PVDNet_nah.pytorch``, ``PVDNet_large_nah.pytorch`` and ``BIMNet.pytorch``) from the
official repository, github.com/codeslake/PVDNet; vidrestore does not redistribute them.
The files are PyTorch state dicts. They are read with ``torch.load(weights_only=True)``,
which restores tensors only and never runs code from the file, and converted by
:mod:`vidrestore.nets.pvdnet_official` (names and shapes; normal or large is detected).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..errors import UserError
from ..nets import LiteFlowNet, PVDNetDeblur
from ..nets.pvdnet_official import liteflownet_from_official, pvdnet_from_official, split_official_state_dict

__all__ = ["is_state_dict_file", "read_state_dict", "load_official_pvdnet", "load_bimnet"]


def is_state_dict_file(path: str | os.PathLike) -> bool:
    """True for an existing file that is not a ``.safetensors`` file (a PyTorch state dict
    such as the official ``*.pytorch``); folders and safetensors files are vidrestore weights."""
    p = Path(path)
    return p.is_file() and p.suffix != ".safetensors"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict saved in ``path`` by ``torch.save`` (on the CPU, ``weights_only=True``).

    Raises:
        UserError: missing file, or a file that is not a tensor-only PyTorch pickle (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"weights file not found: {p}")
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol: the error below says what matters
            warnings.simplefilter("ignore")
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and its own errors here
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {p} as a PyTorch state dict: {detail}") from None
    if not isinstance(state, dict):
        raise UserError(f"{p} is not a PyTorch state dict (it holds a {type(state).__name__})")
    return state


def load_official_pvdnet(path: str | os.PathLike, bimnet: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> PVDNetDeblur:
    """An official PVDNet release file as a :class:`PVDNetDeblur` on ``device`` (eval mode).

    Args:
        path: ``PVDNet_DVD.pytorch``, ``PVDNet_nah.pytorch``, ``PVDNet_large_nah.pytorch`` (or
            any official ``DeblurNet`` state dict, with or without the ``module.`` prefix).
        bimnet: optional ``BIMNet.pytorch`` (or a vidrestore BIMNet folder) whose flow network
            replaces the file's own; needed when the file holds only ``PVDNet.*`` parameters.

    Example:
        >>> net = load_official_pvdnet("PVDNet_DVD.pytorch")            # doctest: +SKIP
        >>> net.pretrained_config["variant"]                              # doctest: +SKIP
        'normal'
    """
    name = Path(path).name
    state = read_state_dict(path)
    flow_net = None if bimnet is None else load_bimnet(bimnet)
    net = pvdnet_from_official(state, flow_net, name)
    net.pretrained_config["weights"] = str(path)  # type: ignore[index]
    return net.to(device).eval()


def load_bimnet(path: str | os.PathLike, device: str | torch.device = "cpu") -> LiteFlowNet:
    """A BIMNet flow network: the official ``BIMNet.pytorch`` (or an official whole-model
    file's ``BIMNet.*`` part), or a vidrestore weight folder holding a :class:`LiteFlowNet`
    or a :class:`PVDNetDeblur` (its BIMNet)."""
    if not Path(path).exists():
        raise UserError(f"BIMNet weights not found: {path}")
    if is_state_dict_file(path):
        bim_part, _ = split_official_state_dict(read_state_dict(path), Path(path).name)
        if bim_part is None:
            raise UserError(f"{Path(path).name} holds no BIMNet parameters")
        return liteflownet_from_official(bim_part, Path(path).name).to(device)
    from ..checkpoint import from_pretrained

    net = from_pretrained(path, device=device)
    if isinstance(net, PVDNetDeblur):
        return net.bimnet
    if not isinstance(net, LiteFlowNet):
        raise UserError(f"{path} holds a {type(net).__name__}, not a BIMNet (LiteFlowNet)")
    return net
