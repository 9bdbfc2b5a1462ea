"""Loader of diffusers ``UNet2DModel`` folders (optional ``diffusers`` dependency) and their scheduler configs."""

from __future__ import annotations
import json
from pathlib import Path
from typing import Any, Mapping
import torch
from torch import nn
from ..checkpoint import CONFIG_NAME
from ..diffusion.schedules import alphas_cumprod as _alphas_cumprod
from ..diffusion.schedules import cosine_betas, scaled_linear_betas
from ..errors import UserError
from .base import Prior, _COMMON_OPTIONS, _abar_from, _check_options, _check_prediction, _denoiser_options, _finish


_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


_DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


class DiffusersUNet(nn.Module):
    """A diffusers ``UNet2DModel`` with the plain signature ``net(x, t) -> tensor``.

    Args:
        unet: The ``diffusers.UNet2DModel``.

    Attributes:
        unet: The wrapped model (its keys appear under ``unet.`` in this module's state dict).
    """

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the ``.sample`` of ``unet(x, t, class_labels)``."""
        return self.unet(x, t, class_labels=class_labels, return_dict=False)[0]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    return data


def _is_diffusers_dir(path: Path) -> bool:
    if (path / "model_index.json").is_file() or (path / "unet" / CONFIG_NAME).is_file():
        return True
    cfg = path / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        return "_class_name" in json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def _find_scheduler_config(unet_dir: Path) -> Path | None:
    for cand in (unet_dir / "scheduler" / "scheduler_config.json", unet_dir / "scheduler_config.json",
                 unet_dir.parent / "scheduler" / "scheduler_config.json"):
        if cand.is_file():
            return cand
    return None


def _diffusers_schedule(sched: Mapping[str, Any], where: str) -> tuple[torch.Tensor, str]:
    """``alphas_cumprod`` and prediction of a diffusers scheduler config (DDPM-style keys)."""
    n = int(sched.get("num_train_timesteps", 1000))
    prediction_type = sched.get("prediction_type", "epsilon")
    if prediction_type not in _DIFFUSERS_PREDICTIONS:
        raise UserError(f"{where}: unsupported prediction_type {prediction_type!r} "
                        f"(expected one of {', '.join(_DIFFUSERS_PREDICTIONS)})")
    if sched.get("trained_betas") is not None:
        betas = torch.as_tensor(sched["trained_betas"], dtype=torch.float64)
    else:
        kind = sched.get("beta_schedule", "linear")
        start, end = float(sched.get("beta_start", 1e-4)), float(sched.get("beta_end", 0.02))
        if kind == "linear":
            # diffusers: plain linspace(beta_start, beta_end, N) (no 1000/N rescaling).
            betas = torch.linspace(start, end, n, dtype=torch.float64)
        elif kind == "scaled_linear":
            betas = scaled_linear_betas(n, start, end)
        elif kind == "squaredcos_cap_v2":
            betas = cosine_betas(n)
        else:
            raise UserError(f"{where}: unsupported beta_schedule {kind!r} "
                            f"(expected linear, scaled_linear or squaredcos_cap_v2)")
    if sched.get("rescale_betas_zero_snr"):
        raise UserError(f"{where}: rescale_betas_zero_snr schedules (alpha_bar = 0 at the last step) are not supported")
    return _alphas_cumprod(betas), _DIFFUSERS_PREDICTIONS[prediction_type]


def _load_diffusers(path: Path, device, dtype, overrides: Mapping[str, Any]) -> Prior:
    _check_options(overrides, _COMMON_OPTIONS, f"diffusers folder {path}")
    unet_dir = path / "unet" if (path / "unet" / CONFIG_NAME).is_file() else path
    cfg = _read_json(unet_dir / CONFIG_NAME)
    cls_name = cfg.get("_class_name")
    if cls_name != "UNet2DModel":
        raise UserError(f"{unet_dir / CONFIG_NAME}: expected a diffusers UNet2DModel (pixel-space), "
                        f"got _class_name {cls_name!r}")
    if not (unet_dir / _DIFFUSERS_WEIGHTS).is_file():
        raise UserError(f"missing {_DIFFUSERS_WEIGHTS} in {unet_dir} (only safetensors weights are loaded)")
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise UserError("diffusers folder needs `pip install vidrestore[diffusers]`") from None
    try:
        unet, info = UNet2DModel.from_pretrained(
            str(unet_dir), local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False,
            output_loading_info=True,
        )
    except Exception as exc:  # diffusers raises ValueError / OSError / RuntimeError with long texts
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load the UNet2DModel in {unet_dir}: {first}") from None
    for field, label in (("missing_keys", "missing key"), ("unexpected_keys", "unexpected key"),
                         ("mismatched_keys", "shape mismatch at")):
        keys = list(info.get(field) or [])
        if keys:
            first = keys[0][0] if isinstance(keys[0], tuple) else keys[0]
            raise UserError(f"{unet_dir / _DIFFUSERS_WEIGHTS} does not match its config.json: {label} {first!r}"
                            + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""))
    sched_path = _find_scheduler_config(unet_dir)
    sched = _read_json(sched_path) if sched_path is not None else {}
    acp, prediction = _diffusers_schedule(sched, str(sched_path or unet_dir))
    if "schedule" in overrides or "num_timesteps" in overrides:
        acp = _abar_from(overrides.get("schedule", "linear"), int(overrides.get("num_timesteps", 1000)), str(path))
    prediction = _check_prediction(overrides.get("prediction", prediction), str(path))
    if cfg.get("num_class_embeds") or cfg.get("class_embed_type"):
        raise UserError(f"{unet_dir}: class-conditional UNet2DModel is not supported")
    sample_size = cfg.get("sample_size")
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    levels = len(cfg.get("block_out_channels", (1,)))
    net = DiffusersUNet(unet).float()
    prior = Prior(
        net,
        acp,
        prediction=prediction,
        name=overrides.get("name", path.name or "diffusers"),
        multiple=2 ** (levels - 1),
        image_size=sample_size,
        source=str(path),
        kind="diffusers",
        config={"unet": {k: v for k, v in cfg.items() if not k.startswith("_")},
                "scheduler": {k: v for k, v in sched.items() if not k.startswith("_")},
                "scheduler_config": None if sched_path is None else str(sched_path),
                "prediction": prediction},
        **_denoiser_options(overrides),
    )
    return _finish(prior, device, dtype)
