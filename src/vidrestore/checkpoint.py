"""Weight folders: ``save_pretrained`` / ``from_pretrained`` (L3; imports :mod:`vidrestore.nets`).

A pretrained network is a folder, in the layout of diffusers' ``save_pretrained`` without the
hub machinery::

    model_dir/
        config.json        {"class": "adm_unet", "format_version": 1, "kwargs": {...}, ...extra}
        model.safetensors  the state dict (float32 or float16)
        README.md          optional model card

``class`` is a key of :data:`vidrestore.nets.NETS` and ``kwargs`` the constructor arguments
(the network's ``config`` attribute). Extra top-level fields describe how to use the network
(e.g. ``"prediction": "eps"``, ``"schedule": "linear"``, ``"num_timesteps": 1000``); they are
returned by :func:`load_config` and attached to loaded networks as ``pretrained_config``.

A single ``.safetensors`` file whose metadata holds the same JSON under ``"config"`` (the
k-diffusion convention) is accepted by :func:`from_pretrained` too. Nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import UserError
from .nets import NETS, get_net

__all__ = ["FORMAT_VERSION", "save_pretrained", "from_pretrained", "load_config", "replace_dir", "state_dict_to_save"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_RESERVED = ("class", "format_version", "kwargs")


def _net_name(net: nn.Module) -> str:
    for name, cls in NETS.items():
        if type(net) is cls:
            return name
    raise ValueError(f"{type(net).__name__} is not registered in vidrestore.nets.NETS")


def state_dict_to_save(net_or_state: nn.Module | Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copy of a state dict, floating tensors cast to ``dtype`` if given."""
    state = net_or_state.state_dict() if isinstance(net_or_state, nn.Module) else net_or_state
    out = {}
    for key, value in state.items():
        t = value.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[key] = t.cpu().contiguous().clone()
    return out


def save_pretrained(
    net: nn.Module,
    directory: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    card: Mapping[str, Any] | str | None = None,
) -> Path:
    """Write ``net`` as a weight folder (atomically: temp folder, then rename).

    Args:
        net: A network whose class is in :data:`vidrestore.nets.NETS` and which has a
            ``config`` dict of constructor kwargs.
        directory: Destination folder; replaced if it exists.
        dtype: Store floating tensors in this dtype (e.g. ``torch.float16``); default: as is.
        card: Extra description. A mapping is merged into ``config.json`` as extra top-level
            fields (e.g. ``{"prediction": "eps", "schedule": "linear"}``; the keys ``class``,
            ``format_version`` and ``kwargs`` are reserved). A string is written as
            ``README.md`` (a model card).

    Returns:
        The folder path.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    name = _net_name(net)
    kwargs = getattr(net, "config", None)
    if not isinstance(kwargs, dict):
        raise ValueError(f"{type(net).__name__} has no `config` dict of constructor kwargs")
    config: dict[str, Any] = {"class": name, "format_version": FORMAT_VERSION, "kwargs": kwargs}
    readme = None
    if isinstance(card, str):
        readme = card
    elif card is not None:
        clash = [k for k in card if k in _RESERVED]
        if clash:
            raise ValueError(f"card may not set reserved config fields {clash}")
        config.update(card)
    text = json.dumps(config, indent=2, sort_keys=False)
    tensors = state_dict_to_save(net, dtype)

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "config": json.dumps(config)})
        (tmp / CONFIG_NAME).write_text(text + "\n")
        if readme is not None:
            (tmp / "README.md").write_text(readme)
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _publish_permissions(folder: Path) -> None:
    # mkdtemp (and some writers) create owner-only entries; give them the usual umask-based modes.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for child in folder.iterdir():
        if child.is_file():
            os.chmod(child, 0o666 & ~umask)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move folder ``src`` to ``dst``; an existing ``dst`` is swapped out, then deleted.

    ``src`` should be on the same file system (e.g. a temp folder next to ``dst``), so that
    each step is an atomic rename.
    """
    src, dst = Path(src), Path(dst)
    _publish_permissions(src)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the config of a weight folder or single ``.safetensors`` file.

    Raises:
        UserError: Missing files, invalid JSON or missing required fields.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as exc:  # safetensors raises its own error types
            raise UserError(f"cannot read {path}: {exc}".splitlines()[0]) from None
        if "config" not in meta:
            raise UserError(f"{path} has no 'config' entry in its safetensors metadata")
        raw, where = meta["config"], f"{path} metadata"
    else:
        cfg_path = path / CONFIG_NAME
        if not path.is_dir():
            raise UserError(f"weights folder not found: {path}")
        if not cfg_path.is_file():
            raise UserError(f"missing {CONFIG_NAME} in {path}")
        raw, where = cfg_path.read_text(), str(cfg_path)
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON in {where}: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(config, dict) or "class" not in config or not isinstance(config.get("kwargs", {}), dict):
        raise UserError(f"{where} must be an object with 'class' and 'kwargs' fields")
    version = config.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise UserError(f"{where}: unsupported format_version {version} (expected {FORMAT_VERSION})")
    return config


def _short_list(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} total)" if len(keys) > limit else "")


def from_pretrained(
    path: str | os.PathLike,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = torch.float32,
) -> nn.Module:
    """Rebuild a network from a weight folder (or single ``.safetensors`` file) and load it strictly.

    Args:
        path: Folder written by :func:`save_pretrained`, or a ``.safetensors`` file with the
            config in its metadata. Local paths only.
        device: Device to move the network to (default: CPU).
        dtype: Parameter dtype after loading (default float32; ``None`` keeps the stored dtype).

    Returns:
        The network in eval mode, with the full config dict as ``net.pretrained_config``.

    Raises:
        UserError: Missing files, bad JSON, unknown class, bad kwargs, missing/unexpected keys or
            shape mismatches (one-line messages).
    """
    from safetensors.torch import load_file

    path = Path(path)
    config = load_config(path)
    weights = path if path.is_file() else path / WEIGHTS_NAME
    if not weights.is_file():
        raise UserError(f"missing {WEIGHTS_NAME} in {path}")
    try:
        cls = get_net(config["class"])
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        net = cls(**config.get("kwargs", {}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"cannot build {config['class']} from {path}: {exc}".splitlines()[0]) from None
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise UserError(f"cannot read {weights}: {exc}".splitlines()[0]) from None

    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short_list(unexpected)}")
        raise UserError(f"weights in {weights} do not match {config['class']}: " + "; ".join(parts))
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        raise UserError(f"shape mismatch in {weights}: {_short_list(bad, 3)}")

    if dtype is None:
        # keep the stored dtype: cast the freshly built module first so that copy_ keeps it
        first = next((t for t in state.values() if t.is_floating_point()), None)
        if first is not None:
            net = net.to(first.dtype)
    net.load_state_dict(state, strict=True)
    if dtype is not None:
        net = net.to(dtype)
    if device is not None:
        net = net.to(device)
    net.pretrained_config = config  # type: ignore[attr-defined]
    return net.eval()
