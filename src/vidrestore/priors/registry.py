""":func:`load_prior`: the bundled priors, vidrestore weight folders, ADM checkpoints and diffusers folders."""

from __future__ import annotations
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping
import torch
from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, from_pretrained, load_config
from ..errors import UserError
from ..nets import ADM_PRESETS
from .adm import _load_adm
from .base import Prior, _COMMON_OPTIONS, _TORCH_SUFFIXES, _abar_from, _check_options, _check_prediction, _denoiser_options, _finish
from .diffusers import _DIFFUSERS_WEIGHTS, _is_diffusers_dir, _load_diffusers


#: Name of the first bundled prior, the default of :func:`load_prior` (``load_prior()`` ==
#: ``load_prior("default")``). Restoration (``restore``, ``demo``, ``sample-prior``) defaults to
#: ``"v2"`` instead.
DEFAULT_PRIOR = "default"


_BUNDLED_FOLDER = "prior-default"
#: Bundled priors by name: ``load_prior(NAME)`` loads ``vidrestore/weights/<folder>``.
BUNDLED_PRIORS = {DEFAULT_PRIOR: _BUNDLED_FOLDER, "v2": "prior-v2"}


def bundled_prior_dir(name: str = DEFAULT_PRIOR) -> Path:
    """Folder of a bundled prior inside the installed package (may not exist)."""
    res = resources.files("vidrestore").joinpath("weights", BUNDLED_PRIORS.get(name, _BUNDLED_FOLDER))
    return Path(os.fspath(res)) if isinstance(res, os.PathLike) else Path(str(res))


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


def load_prior(
    path_or_preset: str | os.PathLike = DEFAULT_PRIOR,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> Prior:
    """Load an image diffusion prior (see the module docstring for the sources).

    Examples::

        prior = load_prior()                                   # the first bundled prior ("default")
        prior = load_prior("v2")                               # the bundled prior v2, the restoration default
        prior = load_prior("runs/prior/prior")                 # a vidrestore weight folder
        prior = load_prior("256x256_diffusion_uncond.pt", preset="adm-imagenet256-uncond")
        prior = load_prior("ffhq_10m.pt")                      # preset inferred from the shapes
        prior = load_prior("ddpm-celebahq-256/")               # diffusers UNet2DModel (+ scheduler)

    Args:
        path_or_preset: ``"default"`` (or another name of :data:`BUNDLED_PRIORS`), or a path to a vidrestore folder / ``.safetensors`` file, a
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
    if spec in BUNDLED_PRIORS:
        folder = bundled_prior_dir(spec)
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            label = "" if spec == DEFAULT_PRIOR else f" {spec!r}"
            raise UserError(f"the bundled prior{label} is missing from this installation (expected {CONFIG_NAME} and "
                            f"{WEIGHTS_NAME} in {folder}); reinstall vidrestore or pass a prior path")
        return _load_vidrestore(folder, spec, device, dtype, overrides)
    path = Path(spec).expanduser()
    if spec in ADM_PRESETS and not path.exists():
        raise UserError(f"{spec!r} is an architecture preset, not a checkpoint: download the weights yourself and "
                        f"pass the file, e.g. load_prior('path/to/file.pt', preset={spec!r}) (vidrestore never "
                        f"downloads weights)")
    if not path.exists():
        raise UserError(f"prior not found: {spec} (expected 'default' or 'v2', a vidrestore weight folder, a "
                        f"guided-diffusion .pt file or a diffusers UNet2DModel folder)")
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
