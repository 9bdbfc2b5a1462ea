"""Image diffusion priors: load a pretrained denoiser from disk (L3).

:func:`load_prior` turns one of four sources into a :class:`Prior`, a
:class:`~vidrestore.diffusion.denoisers.DiscreteDiffusionDenoiser` that follows the denoiser
protocol of :mod:`vidrestore.diffusion` (``eps_and_x0(x_t, t)``, ``alphas_cumprod``):

``"default"``
    The small prior that ships inside the package (``vidrestore/weights/prior-default``), an
    ε-prediction ADM UNet trained on freely licensed photos and video frames; no network access.
A vidrestore weight folder
    ``config.json`` + ``model.safetensors`` written by
    :func:`vidrestore.checkpoint.save_pretrained` (or a single ``.safetensors`` file with the
    config in its metadata).
An OpenAI *guided-diffusion* checkpoint (``.pt``)
    The ADM UNet of Dhariwal & Nichol 2021 ("Diffusion Models Beat GANs on Image Synthesis",
    arXiv:2105.05233), e.g. ``256x256_diffusion_uncond.pt`` (used by SVI) or the DPS
    ``ffhq_10m.pt`` (Chung et al. 2023, "Diffusion Posterior Sampling for General Noisy Inverse
    Problems"). Its architecture comes from a preset (``preset="adm-imagenet256-uncond"``),
    from guided-diffusion flags passed as keyword overrides (``image_size=256,
    num_channels=256, ...``), or — when neither is given — from the state-dict shapes, if they
    match a preset. The file is read with ``torch.load(weights_only=True)`` (never unpickling
    code) and loaded key for key with strict matching. The file itself always comes from the
    user: vidrestore never downloads weights.
A diffusers ``UNet2DModel`` folder
    ``config.json`` (``"_class_name": "UNet2DModel"``) + ``diffusion_pytorch_model.safetensors``,
    loaded through the optional ``diffusers`` library (``pip install vidrestore[diffusers]``).
    The training schedule and prediction type are read from a scheduler config when one is
    found (``scheduler/scheduler_config.json`` inside the folder, ``scheduler_config.json`` next
    to ``config.json``, or a sibling ``../scheduler/`` as in a pipeline folder; a pipeline folder
    with ``unet/`` + ``scheduler/`` may be given directly).

Every user mistake (missing file, unknown format, architecture mismatch) raises a one-line
:class:`~vidrestore.errors.UserError` that says what was expected.

Layering: imports :mod:`vidrestore.nets`, :mod:`vidrestore.diffusion`,
:mod:`vidrestore.checkpoint`, :mod:`vidrestore.tensor` and :mod:`vidrestore.errors` only.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, from_pretrained, load_config
from .diffusion.denoisers import PREDICTIONS, DiscreteDiffusionDenoiser, denoise_pixel
from .diffusion.samplers import sample_prior
from .diffusion.schedules import alphas_cumprod as _alphas_cumprod
from .diffusion.schedules import cosine_betas, get_betas, scaled_linear_betas
from .errors import UserError
from .nets import ADM_PRESETS, ADMUNet, adm_from_flags
from .nets.adm_unet import GroupNorm32
from .tensor import fold_time, unfold_time

__all__ = [
    "DEFAULT_PRIOR",
    "Prior",
    "DiffusersUNet",
    "bundled_prior_dir",
    "load_prior",
    "sample_prior_grid",
    "make_grid",
    "denoise_image",
]

#: Name of the bundled prior (``load_prior("default")``).
DEFAULT_PRIOR = "default"
_BUNDLED_FOLDER = "prior-default"

#: Options every source accepts as keyword overrides of :func:`load_prior`.
_COMMON_OPTIONS = ("prediction", "schedule", "num_timesteps", "clip_x0", "chunk_size", "learned_sigma", "name")
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
_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


# ----------------------------------------------------------------------------------------------
# The Prior object
# ----------------------------------------------------------------------------------------------


class Prior(DiscreteDiffusionDenoiser):
    """A pretrained pixel-space diffusion network with its training schedule.

    Follows the denoiser protocol of :mod:`vidrestore.diffusion`: ``eps(x_t, t)``,
    ``x0(x_t, t)`` (Tweedie's posterior mean), ``eps_and_x0``, ``denoise_pixel`` and
    ``alphas_cumprod``. Inputs ``x_t`` are in model space ``[-1, 1]``, ``(N, C, H, W)`` images or
    ``(B, C, T, H, W)`` videos (frames are denoised independently), ``t`` integer training
    timesteps. Inputs are cast to the network's dtype and outputs back to the input dtype, so a
    float16 network can be fed float32 tensors. Autograd is not disabled (guided solvers
    differentiate through the prior with respect to ``x_t``); the network's parameters are
    frozen (``requires_grad=False``).

    Args:
        net: The network with its upstream forward signature (ADM: ``net(x, timesteps[, y])``;
            diffusers: :class:`DiffusersUNet`, ``net(x, t)``).
        alphas_cumprod: ``[N]`` cumulative alphas of the training schedule (or a schedule name).
        prediction: ``"eps"``, ``"x0"`` or ``"v"``.
        name: Human-readable name (folder or file stem).
        multiple: Height and width must be multiples of this (``2 ** (levels - 1)``).
        image_size: Training resolution (the network works at other multiples of ``multiple``).
        source: Where the weights came from (path).
        kind: ``"vidrestore"``, ``"adm"`` or ``"diffusers"``.
        config: Description of the loaded network (JSON-friendly).
        class_label: Class index fed to class-conditional networks (``None`` otherwise).
        learned_sigma: See :class:`~vidrestore.diffusion.denoisers.DiscreteDiffusionDenoiser`.
        clip_x0: Clamp ``x0`` to ``[-1, 1]`` by default.
        chunk_size: Run the network on at most this many frames at a time.

    Attributes:
        net: The network module (see ``net`` above).
        name, multiple, image_size, source, kind, config, class_label: As given.
    """

    def __init__(
        self,
        net: nn.Module,
        alphas_cumprod: torch.Tensor | str,
        *,
        prediction: str = "eps",
        name: str = "prior",
        multiple: int = 1,
        image_size: int | None = None,
        source: str = "",
        kind: str = "",
        config: Mapping[str, Any] | None = None,
        class_label: int | None = None,
        learned_sigma: bool | None = None,
        clip_x0: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(net, alphas_cumprod, prediction=prediction, learned_sigma=learned_sigma,
                         clip_x0=clip_x0, chunk_size=chunk_size)
        self.net: nn.Module = net
        self.name = str(name)
        self.multiple = int(multiple)
        self.image_size = None if image_size is None else int(image_size)
        self.source = str(source)
        self.kind = str(kind)
        self.config = dict(config or {})
        self.class_label = None if class_label is None else int(class_label)
        net.eval()
        net.requires_grad_(False)

    # -- device / dtype ---------------------------------------------------------------------

    def _first_param(self) -> torch.Tensor | None:
        return next(iter(self.net.parameters()), None)

    @property
    def device(self) -> torch.device:
        """Device of the network's parameters."""
        p = self._first_param()
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the network's parameters."""
        p = self._first_param()
        return p.dtype if p is not None else torch.float32

    @property
    def num_parameters(self) -> int:
        """Number of network parameters."""
        return sum(p.numel() for p in self.net.parameters())

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Prior":
        """Move (and optionally cast) the network in place; returns ``self``.

        For reduced precision (float16 / bfloat16) the GroupNorm layers of ADM networks keep
        float32 parameters, as guided-diffusion's ``convert_to_fp16`` does (they normalise in
        float32 and return the input dtype).
        """
        _cast_net(self.net, device, dtype)
        return self

    # -- network call -----------------------------------------------------------------------

    def _run_net(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Overrides DiscreteDiffusionDenoiser._run_net: dtype casting and class labels around
        # the same chunked call.
        out_dtype = x.dtype
        x = x.to(self.dtype)
        n = x.shape[0]
        step = n if self.chunk_size is None else self.chunk_size
        outs = []
        for i in range(0, n, step):
            xc, tc = x[i : i + step], t[i : i + step]
            if self.class_label is None:
                out = self.net(xc, tc)
            else:
                out = self.net(xc, tc, torch.full_like(tc, self.class_label))
            outs.append(self._keep_mean_channels(out, xc).to(out_dtype))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`UserError` unless both sides are multiples of :attr:`multiple`."""
        if height % self.multiple or width % self.multiple:
            raise UserError(
                f"prior {self.name!r} needs frame sides that are multiples of {self.multiple}, got {height}x{width}"
            )

    def __repr__(self) -> str:
        return (
            f"Prior(name={self.name!r}, kind={self.kind!r}, prediction={self.prediction!r}, "
            f"timesteps={self.num_timesteps}, image_size={self.image_size}, multiple={self.multiple}, "
            f"params={self.num_parameters / 1e6:.2f}M, device={self.device}, dtype={self.dtype})"
        )


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


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def bundled_prior_dir() -> Path:
    """Folder of the bundled prior inside the installed package (may not exist)."""
    res = resources.files("vidrestore").joinpath("weights", _BUNDLED_FOLDER)
    return Path(os.fspath(res)) if isinstance(res, os.PathLike) else Path(str(res))


def _abar_from(schedule: Any, num_timesteps: int, where: str) -> torch.Tensor:
    if isinstance(schedule, str):
        try:
            return _alphas_cumprod(get_betas(schedule, int(num_timesteps)))
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
    acp = torch.as_tensor(schedule, dtype=torch.float64).reshape(-1)
    if acp.numel() == 0 or bool((acp <= 0).any()) or bool((acp >= 1).any()):
        raise UserError(f"{where}: alphas_cumprod must be a non-empty 1-D sequence with values in (0, 1)")
    return acp


def _check_prediction(prediction: Any, where: str) -> str:
    if prediction not in PREDICTIONS:
        raise UserError(f"{where}: prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
    return str(prediction)


def _check_options(overrides: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise UserError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {what}; "
                        f"accepted: {', '.join(allowed)}")


def _denoiser_options(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k: overrides[k] for k in ("clip_x0", "chunk_size", "learned_sigma") if k in overrides}


def _cast_net(net: nn.Module, device: torch.device | str | None, dtype: torch.dtype | None) -> nn.Module:
    net.to(device=device, dtype=dtype)
    if dtype is not None and dtype != torch.float32:
        for m in net.modules():
            if isinstance(m, GroupNorm32):
                m.float()
    return net


def _finish(prior: Prior, device: torch.device | str | None, dtype: torch.dtype | None) -> Prior:
    prior.to(device=device, dtype=dtype)
    return prior


def _state_dict_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """First difference between two state dicts as a short phrase, or ``None`` if they match."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    more = lambda keys: f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""  # noqa: E731
    if missing:
        return f"missing key {missing[0]!r}{more(missing)}"
    if unexpected:
        return f"unexpected key {unexpected[0]!r}{more(unexpected)}"
    bad = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        k = bad[0]
        return (f"shape mismatch at {k!r}: file has {tuple(state[k].shape)}, architecture expects "
                f"{tuple(expected[k].shape)}{more(bad)}")
    return None


# ----------------------------------------------------------------------------------------------
# vidrestore folders
# ----------------------------------------------------------------------------------------------


def _load_vidrestore(path: Path, name: str | None, device, dtype, overrides: Mapping[str, Any]) -> Prior:
    _check_options(overrides, _COMMON_OPTIONS, f"vidrestore weights {path}")
    config = load_config(path)
    net = from_pretrained(path, dtype=torch.float32)
    where = str(path)
    prediction = _check_prediction(overrides.get("prediction", config.get("prediction", "eps")), where)
    schedule = overrides.get("schedule", config.get("schedule", "linear"))
    n = int(overrides.get("num_timesteps", config.get("num_timesteps", 1000)))
    kwargs = config.get("kwargs", {})
    levels = len(kwargs.get("channel_mult", (1,)))
    if getattr(net, "num_classes", None) is not None:
        raise UserError(f"{where}: class-conditional vidrestore priors are not supported")
    prior = Prior(
        net,
        _abar_from(schedule, n, where),
        prediction=prediction,
        name=overrides.get("name", name or config.get("name") or path.stem),
        multiple=2 ** (levels - 1),
        image_size=kwargs.get("image_size"),
        source=where,
        kind="vidrestore",
        config=config,
        **_denoiser_options(overrides),
    )
    return _finish(prior, device, dtype)


# ----------------------------------------------------------------------------------------------
# guided-diffusion (.pt) checkpoints
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# diffusers folders
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def load_prior(
    path_or_preset: str | os.PathLike = DEFAULT_PRIOR,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> Prior:
    """Load an image diffusion prior (see the module docstring for the sources).

    Examples::

        prior = load_prior()                                   # the bundled prior
        prior = load_prior("runs/prior/prior")                 # a vidrestore weight folder
        prior = load_prior("256x256_diffusion_uncond.pt", preset="adm-imagenet256-uncond")
        prior = load_prior("ffhq_10m.pt")                      # preset inferred from the shapes
        prior = load_prior("ddpm-celebahq-256/")               # diffusers UNet2DModel (+ scheduler)

    Args:
        path_or_preset: ``"default"``, or a path to a vidrestore folder / ``.safetensors`` file, a
            guided-diffusion ``.pt`` file or a diffusers folder. A bare ADM preset name is an
            error (the checkpoint file must be given; nothing is downloaded).
        device: Device of the network (default CPU).
        dtype: Parameter dtype (default float32; inputs are cast to it and outputs back).
        **overrides: Options.

            Every source: ``prediction`` (``"eps"``, ``"x0"``, ``"v"``), ``schedule`` (a name
            of :data:`vidrestore.diffusion.SCHEDULES` or an ``alphas_cumprod`` sequence),
            ``num_timesteps``, ``clip_x0``, ``chunk_size``, ``learned_sigma``, ``name``.

            guided-diffusion files: ``preset`` (a key of
            :data:`vidrestore.nets.ADM_PRESETS`), guided-diffusion flags (``image_size``,
            ``num_channels``, ``num_res_blocks``, ``channel_mult``, ``attention_resolutions``
            (feature-map sizes, ``"32,16,8"``), ``num_heads``, ``num_head_channels``,
            ``num_heads_upsample``, ``learn_sigma``, ``class_cond``, ``use_scale_shift_norm``,
            ``resblock_updown``, ``use_new_attention_order``, ``use_fp16``, ``dropout``,
            ``use_checkpoint``; with a preset they override its values), the diffusion flags
            ``diffusion_steps``, ``noise_schedule`` and ``predict_xstart``; ``adm_kwargs``
            (raw :class:`~vidrestore.nets.ADMUNet` arguments, for architectures the flags
            cannot express); ``class_label`` (required for class-conditional networks).

    Returns:
        The :class:`Prior`, in eval mode with frozen parameters.

    Raises:
        UserError: Unknown source, missing file, unsupported format, unknown option,
            architecture or shape mismatch (one-line message saying what was expected).
    """
    spec = os.fspath(path_or_preset)
    if spec == DEFAULT_PRIOR:
        folder = bundled_prior_dir()
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise UserError(f"the bundled prior is missing from this installation (expected {CONFIG_NAME} and "
                            f"{WEIGHTS_NAME} in {folder}); reinstall vidrestore or pass a prior path")
        return _load_vidrestore(folder, "default", device, dtype, overrides)
    path = Path(spec).expanduser()
    if spec in ADM_PRESETS and not path.exists():
        raise UserError(f"{spec!r} is an architecture preset, not a checkpoint: download the weights yourself and "
                        f"pass the file, e.g. load_prior('path/to/file.pt', preset={spec!r}) (vidrestore never "
                        f"downloads weights)")
    if not path.exists():
        raise UserError(f"prior not found: {spec} (expected 'default', a vidrestore weight folder, a guided-diffusion "
                        f".pt file or a diffusers UNet2DModel folder)")
    if path.is_dir():
        if _is_diffusers_dir(path):
            return _load_diffusers(path, device, dtype, overrides)
        if (path / CONFIG_NAME).is_file():
            return _load_vidrestore(path, None, device, dtype, overrides)
        raise UserError(f"{path} is not a prior folder (expected config.json + model.safetensors, or a diffusers "
                        f"folder with config.json + {_DIFFUSERS_WEIGHTS})")
    if path.suffix == ".safetensors":
        try:
            load_config(path)
        except UserError:
            return _load_adm(path, device, dtype, overrides)  # plain ADM weights converted to safetensors
        return _load_vidrestore(path, None, device, dtype, overrides)
    if path.suffix.lower() in _TORCH_SUFFIXES:
        return _load_adm(path, device, dtype, overrides)
    raise UserError(f"unsupported prior file {path} (expected a folder, a guided-diffusion .pt/.pth file or a "
                    f".safetensors file)")


# ----------------------------------------------------------------------------------------------
# Conveniences: sample grid, one-step denoising of pixel images
# ----------------------------------------------------------------------------------------------


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images into one ``(C, H', W')`` image.

    Args:
        images: Batch of images.
        nrow: Images per row (default ``ceil(sqrt(N))``).
        padding: Pixels between images and around the border.
        pad_value: Fill value of the padding.

    Returns:
        The grid, same dtype and device as ``images``.
    """
    n, c, h, w = images.shape
    nrow = max(1, min(n, nrow or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / nrow)
    grid = images.new_full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y0 : y0 + h, x0 : x0 + w] = images[i]
    return grid


def sample_prior_grid(
    prior: Prior,
    n: int = 8,
    *,
    size: int = 64,
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    nrow: int | None = None,
) -> torch.Tensor:
    """Unconditional samples of a prior tiled into one image (a sanity check of a prior).

    Runs :func:`vidrestore.diffusion.samplers.sample_prior` (DDIM, Song et al. 2021, trailing
    timesteps) from seeded Gaussian noise and tiles the results with :func:`make_grid`.

    Args:
        prior: The prior (anything following the denoiser protocol with ``multiple``).
        n: Number of samples.
        size: Side of each square sample; a multiple of ``prior.multiple``.
        steps: DDIM steps.
        eta: DDIM stochasticity in ``[0, 1]``.
        seed: Seed of the noise (CPU generator: same samples on every device).
        device: Device to sample on (default: the prior's device).
        nrow: Samples per row of the grid (default ``ceil(sqrt(n))``).

    Returns:
        float32 CPU tensor ``(3, H, W)`` in ``[0, 1]`` (``(grid * 255).round().byte()`` for PNG).
    """
    if n < 1 or steps < 1:
        raise UserError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    multiple = int(getattr(prior, "multiple", 1))
    if size < 1 or size % multiple:
        raise UserError(f"size must be a positive multiple of {multiple}, got {size}")
    channels = int(getattr(getattr(prior, "net", None), "in_channels", 3) or 3)
    if device is None:
        device = getattr(prior, "device", None)
    x = sample_prior(prior, (n, channels, size, size), steps=steps, eta=eta, seed=seed, device=device)
    return make_grid(x.float().cpu(), nrow=nrow)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


def denoise_image(prior: Prior, y: torch.Tensor, sigma_pixel: float | torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """One-step Tweedie denoising of pixel images or videos with additive Gaussian noise.

    :func:`vidrestore.diffusion.denoisers.denoise_pixel` (Tweedie's formula, Efron 2011,
    "Tweedie's Formula and Selection Bias", at the training timestep whose noise level matches
    ``2 * sigma_pixel`` in model space) under ``torch.no_grad()``, with reflect-padding to the
    prior's size multiple and cropping back.

    Args:
        prior: The prior.
        y: Noisy ``(C, H, W)``, ``(N, C, H, W)`` or ``(B, C, T, H, W)`` tensor in pixel space.
        sigma_pixel: Noise standard deviation in ``[0, 1]`` units (e.g. ``25 / 255``).
        clamp: Clamp the result to ``[0, 1]``.

    Returns:
        The denoised estimate, shape, dtype and device of ``y``.
    """
    if y.ndim not in (3, 4, 5):
        raise UserError(f"image must be (C, H, W), (N, C, H, W) or (B, C, T, H, W), got {tuple(y.shape)}")
    squeeze = y.ndim == 3
    x = y[None] if squeeze else y
    batch = x.shape[0] if x.ndim == 5 else None
    sig = torch.as_tensor(sigma_pixel, dtype=torch.float64).detach().cpu()
    if batch is not None:
        if sig.ndim == 1:
            sig = sig.repeat_interleave(x.shape[2])  # one level per clip -> one per frame
        x = fold_time(x)
    xp, h, w = _pad_to_multiple(x, int(getattr(prior, "multiple", 1)))
    with torch.no_grad():
        out = denoise_pixel(prior, xp.to(getattr(prior, "device", xp.device)), sig)
    out = out[..., :h, :w].to(device=y.device, dtype=y.dtype)
    if clamp:
        out = out.clamp(0.0, 1.0)
    if batch is not None:
        out = unfold_time(out, batch)
    return out[0] if squeeze else out
