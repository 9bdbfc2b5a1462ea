"""Image diffusion priors: load a pretrained denoiser from disk.

:func:`load_prior` turns one of four sources into a :class:`Prior`, a
:class:`~vidrestore.diffusion.denoisers.DiscreteDiffusionDenoiser` that follows the denoiser
protocol of :mod:`vidrestore.diffusion` (``eps_and_x0(x_t, t)``, ``alphas_cumprod``):

``"default"`` and ``"v2"``
    The two small priors that ship inside the package (``vidrestore/weights/prior-default``,
    ``vidrestore/weights/prior-v2``), ε-prediction ADM UNets trained on freely licensed photos
    and video frames; no network access. ``"default"`` is the first one and the default of
    :func:`load_prior`; ``"v2"``, trained further from it, is the default of the restoration
    methods.
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


Modules: :mod:`.base` (the :class:`Prior` object), :mod:`.adm` and :mod:`.diffusers` (loaders of
the external formats), :mod:`.registry` (:func:`load_prior` and the bundled prior),
:mod:`.tools` (sample grids, image denoising).
"""

from ..nets import ADM_PRESETS  # noqa: F401 - the presets that ADM checkpoints are matched against
from .base import Prior
from .diffusers import DiffusersUNet
from .registry import DEFAULT_PRIOR, bundled_prior_dir, load_prior
from .tools import denoise_image, make_grid, sample_prior_grid

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
