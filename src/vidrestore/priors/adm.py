"""Loader of OpenAI guided-diffusion (ADM) checkpoints (``.pt``): architecture from a preset, from flags or from the state-dict shapes."""

from __future__ import annotations
from pathlib import Path
from typing import Any, Mapping
import torch
from ..errors import UserError
from ..nets import ADM_PRESETS, ADMUNet, adm_from_flags
from .base import Prior, _COMMON_OPTIONS, _abar_from, _cast_net, _check_options, _check_prediction, _denoiser_options, _finish, _state_dict_mismatch


#: Extra options of guided-diffusion ``.pt`` files (besides the architecture flags).
_ADM_OPTIONS = ("preset", "adm_kwargs", "class_label")


#: guided-diffusion ``script_util.create_model`` flags understood by :func:`~vidrestore.nets.adm_from_flags`.
_ADM_FLAGS = (
    "image_size", "num_channels", "num_res_blocks", "channel_mult", "learn_sigma", "class_cond",
    "use_checkpoint", "attention_resolutions", "num_heads", "num_head_channels", "num_heads_upsample",
    "use_scale_shift_norm", "dropout", "resblock_updown", "use_fp16", "use_new_attention_order",
)  # fmt: skip


#: guided-diffusion flags that describe the diffusion process (mapped onto the schedule).
_ADM_DIFFUSION_FLAGS = (
    "diffusion_steps", "noise_schedule", "predict_xstart", "timestep_respacing", "use_kl",
    "rescale_timesteps", "rescale_learned_sigmas",
)  # fmt: skip


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path))
        except Exception as exc:  # safetensors raises its own types
            raise UserError(f"cannot read {path} as safetensors: {str(exc).splitlines()[0]}") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle / zip / weights_only errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot read {path} as a PyTorch state dict (torch.load weights_only): {first}") from None
    # Some trainers wrap the weights: {"state_dict": {...}}, {"model": {...}}, {"ema": {...}}.
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "ema", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} is not a state dict (expected a mapping of parameter names to tensors)")
    state = {str(k): v for k, v in obj.items()}
    # DataParallel / DistributedDataParallel prefix.
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _describe_flags(flags: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={flags[k]!r}" for k in sorted(flags))


def _infer_preset(state: Mapping[str, torch.Tensor]) -> str | None:
    for name, flags in ADM_PRESETS.items():
        with torch.device("meta"):
            expected = adm_from_flags(**flags).state_dict()
        if _state_dict_mismatch(expected, state) is None:
            return name
    return None


def _build_adm(path: Path, state: Mapping[str, torch.Tensor], overrides: Mapping[str, Any]) -> tuple[ADMUNet, str, dict]:
    """Build the ADM UNet for ``state``; returns ``(net, architecture description, flags)``."""
    presets = ", ".join(sorted(ADM_PRESETS))
    preset = overrides.get("preset")
    flags = {k: overrides[k] for k in _ADM_FLAGS + _ADM_DIFFUSION_FLAGS if k in overrides}
    adm_kwargs = overrides.get("adm_kwargs")
    if adm_kwargs is not None:
        if preset is not None or any(k in overrides for k in _ADM_FLAGS):
            raise UserError("pass either adm_kwargs (ADMUNet arguments) or preset / guided-diffusion flags, not both")
        try:
            with torch.device("meta"):
                net = ADMUNet(**dict(adm_kwargs))
        except (TypeError, ValueError) as exc:
            raise UserError(f"cannot build ADMUNet from adm_kwargs: {exc}") from None
        return net, f"ADMUNet({_describe_flags(adm_kwargs)})", flags
    if preset is not None:
        if preset not in ADM_PRESETS:
            raise UserError(f"unknown ADM preset {preset!r}; known: {presets}")
        flags = {**ADM_PRESETS[preset], **flags}
        arch = f"preset {preset!r}" + (f" with {_describe_flags({k: overrides[k] for k in _ADM_FLAGS if k in overrides})}"
                                      if any(k in overrides for k in _ADM_FLAGS) else "")
    elif any(k in flags for k in _ADM_FLAGS):
        arch = f"guided-diffusion flags {_describe_flags({k: v for k, v in flags.items() if k in _ADM_FLAGS})}"
    else:
        inferred = _infer_preset(state)
        if inferred is None:
            raise UserError(
                f"cannot infer the ADM architecture of {path}: its weights match no preset ({presets}); "
                f"pass preset=NAME or guided-diffusion flags (image_size=..., num_channels=..., ...)"
            )
        flags = {**ADM_PRESETS[inferred], **flags}
        arch = f"preset {inferred!r} (inferred from the weights)"
    try:
        with torch.device("meta"):  # no random initialisation; the weights are assigned below
            net = adm_from_flags(**flags)
    except (TypeError, ValueError) as exc:
        raise UserError(f"cannot build the ADM UNet from {arch}: {exc}") from None
    return net, arch, flags


def _load_adm(path: Path, device, dtype, overrides: Mapping[str, Any]) -> Prior:
    allowed = _COMMON_OPTIONS + _ADM_OPTIONS + _ADM_FLAGS + _ADM_DIFFUSION_FLAGS
    _check_options(overrides, allowed, f"guided-diffusion checkpoint {path}")
    state = _read_state_dict(path)
    net, arch, flags = _build_adm(path, state, overrides)
    problem = _state_dict_mismatch(net.state_dict(), state)
    if problem is not None:
        raise UserError(f"{path} does not match the ADM UNet of {arch}: {problem}")
    net.load_state_dict(state, strict=True, assign=True)
    _cast_net(net, None, torch.float32)  # files may store float16; `dtype` is applied at the end
    where = str(path)
    # Schedule: explicit overrides first, then guided-diffusion's diffusion flags.
    n = int(overrides.get("num_timesteps", flags.get("diffusion_steps", 1000)))
    schedule = overrides.get("schedule", flags.get("noise_schedule", "linear"))
    prediction = overrides.get("prediction", "x0" if flags.get("predict_xstart") else "eps")
    class_label = overrides.get("class_label")
    if net.num_classes is not None and class_label is None:
        raise UserError(f"{path} is class-conditional ({net.num_classes} classes): pass class_label=K")
    if net.num_classes is None and class_label is not None:
        raise UserError(f"{path} is not class-conditional; drop class_label")
    if class_label is not None and not 0 <= int(class_label) < net.num_classes:
        raise UserError(f"class_label must lie in [0, {net.num_classes - 1}], got {class_label}")
    prior = Prior(
        net,
        _abar_from(schedule, n, where),
        prediction=_check_prediction(prediction, where),
        name=overrides.get("name", path.stem),
        multiple=2 ** (net.num_levels - 1),
        image_size=net.image_size,
        source=where,
        kind="adm",
        config={"class": "adm_unet", "kwargs": net.config, "architecture": arch, "prediction": prediction,
                "schedule": schedule if isinstance(schedule, str) else "custom", "num_timesteps": n},
        class_label=class_label,
        **_denoiser_options(overrides),
    )
    return _finish(prior, device, dtype)
