"""The run folder every trainer writes (one scaffold for prior, BIMNet, PVDNet and LGC-VD).

Layout of ``out_dir``::

    checkpoint/   model.safetensors, [ema.safetensors], optimizer.pt, trainer_state.json,
                  [config.json]   -- replaced atomically (a complete folder or the previous one)
    log.jsonl     one JSON record per logged step; trimmed back to the checkpoint on resume
    train_config.json             the resolved configuration of the run (where the trainer has one)

Resuming restores the network, the EMA (with its update count), the optimizer and the
trainer's own state dictionary; ``expect`` guards against resuming with different settings,
and :func:`check_resume_config` compares a trainer's config dataclass with the
``train_config.json`` of the run being resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..checkpoint import replace_dir, state_dict_to_save
from ..errors import UserError
from .ema import EMA

__all__ = ["CHECKPOINT", "LOG", "TRAIN_CONFIG", "atomic_json", "config_record", "check_resume_config", "save_checkpoint",
           "load_checkpoint", "has_checkpoint", "trim_log"]

CHECKPOINT = "checkpoint"
LOG = "log.jsonl"
TRAIN_CONFIG = "train_config.json"


def atomic_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def config_record(cfg: Any) -> dict:
    """A config dataclass as plain JSON values (tuples as lists, paths as strings, nested
    dataclasses as dictionaries, other objects as ``"<TypeName>"``), the form stored in
    ``train_config.json``."""
    return json.loads(json.dumps(asdict(cfg), default=_json_value))


def _json_value(obj: Any) -> str:
    return os.fspath(obj) if isinstance(obj, os.PathLike) else f"<{type(obj).__name__}>"


def check_resume_config(path: Path, cfg: Any, may_change: Iterable[str] = ("steps",)) -> None:
    """Refuse to resume a run with other settings than those it was started with.

    Compares every field of the dataclass ``cfg`` with the same key of the saved
    ``train_config.json`` at ``path``; fields in ``may_change`` and keys the saved file does not
    have (runs written before the field existed) are not compared, and a missing file passes.
    Inside a nested dataclass field (such as a data config), a key the saved file lacks is
    read as that field's default, the value such an older run used.

    Raises:
        UserError: (a ``ValueError``) naming each differing field with both values.
    """
    path = Path(path)
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    new = config_record(cfg)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value) and isinstance(saved.get(f.name), dict):
            saved[f.name] = {**config_record(type(value)()), **saved[f.name]}
    skip = set(may_change)
    diff = [f"{f.name} {saved[f.name]!r} -> {new[f.name]!r}" for f in fields(cfg)
            if f.name not in skip and f.name in saved and saved[f.name] != new[f.name]]
    if diff:
        allowed = ", ".join(sorted(skip)) or "nothing"
        raise UserError(f"cannot resume {path.parent}: its settings differ in {'; '.join(diff)} "
                        f"(only {allowed} may change on resume); use the saved settings or a new --out")


def has_checkpoint(ckpt_dir: Path) -> bool:
    """Whether ``ckpt_dir`` holds a finished checkpoint."""
    return (Path(ckpt_dir) / "trainer_state.json").is_file()


def save_checkpoint(ckpt_dir: Path, net: nn.Module, opt: torch.optim.Optimizer, state: Mapping[str, Any], *,
                    ema: EMA | None = None, config: Mapping[str, Any] | None = None) -> None:
    """Write a complete checkpoint into a temporary folder next to ``ckpt_dir``, then swap it in
    (an interrupted save leaves the previous checkpoint intact). ``config`` (JSON) is stored as
    ``config.json`` so a resume can check that the network is the same."""
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ckpt_dir.name}.tmp-", dir=ckpt_dir.parent))
    try:
        save_file(state_dict_to_save(net), str(tmp / "model.safetensors"))
        if ema is not None:
            save_file(state_dict_to_save(ema.state_dict()), str(tmp / "ema.safetensors"))
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        if config is not None:
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "trainer_state.json").write_text(json.dumps(dict(state)) + "\n")
        replace_dir(tmp, ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(ckpt_dir: Path, net: nn.Module, opt: torch.optim.Optimizer, *, ema: EMA | None = None,
                    expect: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                    map_location: Any = None) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` into ``net``/``opt``/``ema`` and
    return the trainer state. :class:`UserError` when a value of ``expect`` differs from the
    saved state, or ``config`` from the saved ``config.json`` (resume with other settings)."""
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    state = json.loads((ckpt_dir / "trainer_state.json").read_text())
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise UserError(f"checkpoint in {ckpt_dir} has {key}={state.get(key)!r}, this run {value!r}; use a new --out")
    if config is not None:
        saved = json.loads((ckpt_dir / "config.json").read_text())
        if saved != json.loads(json.dumps(dict(config))):
            raise UserError(f"checkpoint in {ckpt_dir} was made with a different network config")
    net.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")), strict=True)
    if ema is not None:
        ema.load_state_dict(load_file(str(ckpt_dir / "ema.safetensors")), num_updates=state["ema_updates"])
    opt.load_state_dict(torch.load(ckpt_dir / "optimizer.pt", weights_only=True, map_location=map_location))
    return state


def trim_log(log_path: Path, step: int) -> None:
    """After a resume, drop the log records written after the checkpoint's ``step``."""
    log_path = Path(log_path)
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if line.strip() and json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    tmp = log_path.with_name(f".{log_path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, log_path)
