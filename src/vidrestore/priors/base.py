"""The :class:`Prior` object: a pretrained pixel-space diffusion network with its training schedule, and the checks shared by the loaders."""

from __future__ import annotations
from typing import Any, Mapping
import torch
from torch import nn
from ..diffusion.denoisers import PREDICTIONS, DiscreteDiffusionDenoiser
from ..diffusion.schedules import alphas_cumprod as _alphas_cumprod
from ..diffusion.schedules import get_betas
from ..errors import UserError
from ..nets.adm_unet import GroupNorm32
from ..heartbeat import report_fraction
from ..tiling import DEFAULT_TILE_OVERLAP, tiled_map


#: Options every source accepts as keyword overrides of :func:`load_prior`.
_COMMON_OPTIONS = ("prediction", "schedule", "num_timesteps", "clip_x0", "chunk_size", "learned_sigma", "name", "tile", "tile_overlap")


_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


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
        tile: Run the network on overlapping spatial tiles of this side (a multiple of
            ``multiple``) when a frame is larger, blending them (:func:`vidrestore.tiling.tiled_map`);
            ``None``: whole frames. Bounds the memory of global self-attention on large frames.
        tile_overlap: Pixels shared by neighbouring tiles.

    Attributes:
        net: The network module (see ``net`` above).
        engine: ``None`` (run ``net`` eagerly) or a callable ``engine(x, t)`` with ``net``'s
            forward that runs calls needing no input gradient (:mod:`vidrestore.priors.engine`;
            set by :meth:`set_engine`).
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
        tile: int | None = None,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
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
        self.tile = None if not tile else int(tile)
        self.tile_overlap = int(tile_overlap)
        self.engine = None
        self.engine_name = "eager"
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

    def set_engine(self, engine: str | None = "auto", precision: str | None = None) -> "Prior":
        """Run the network's gradient-free calls with ``engine`` (``"eager"``, ``"openvino"``,
        ``"auto"``: :func:`~vidrestore.priors.engine.resolve_engine`) at ``precision`` (default:
        the network's dtype). Call it while the network is still float32 (the conversion uses
        the float32 weights). Class-conditional networks stay eager. Returns ``self``."""
        from .engine import OpenVINONet, resolve_engine

        name = resolve_engine(engine, self.device)
        if precision is None:
            precision = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        if name == "eager" or self.class_label is not None:
            self.engine, self.engine_name = None, "eager"
            return self
        in_ch = int(getattr(self.net, "in_channels", None) or self.config.get("kwargs", {}).get("in_channels", 3))
        side = max(self.multiple, 64 - 64 % max(self.multiple, 1))
        try:
            self.engine = OpenVINONet(self.net, precision, in_channels=in_ch, example_size=side)
        except Exception as exc:  # a network the runtime cannot convert: eager unless asked for explicitly
            if (engine or "auto") != "auto":
                raise UserError(f"--engine {name} cannot run prior {self.name!r}: {exc}".splitlines()[0]) from None
            self.engine, self.engine_name = None, "eager"
            return self
        self.engine_name = f"{name} ({precision})"
        return self

    # -- network call -----------------------------------------------------------------------

    def _run_net(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Overrides DiscreteDiffusionDenoiser._run_net: dtype casting and class labels around
        # the same chunked call, on spatial tiles when `tile` is set and a frame is larger.
        if self.tile:
            # tiled_map reports the fraction of tiles done to an open progress bar
            return tiled_map(lambda xc: self._run_chunks(xc, t, report=False), x, self.tile, self.tile_overlap, multiple=self.multiple)
        return self._run_chunks(x, t)

    def _run_chunks(self, x: torch.Tensor, t: torch.Tensor, report: bool = True) -> torch.Tensor:
        out_dtype = x.dtype
        engine = self.engine if self.engine is not None and not (torch.is_grad_enabled() and x.requires_grad) else None
        x = x.to(self.dtype) if engine is None else x
        n = x.shape[0]
        step = n if self.chunk_size is None else self.chunk_size
        outs = []
        for i in range(0, n, step):
            xc, tc = x[i : i + step], t[i : i + step]
            if engine is not None:
                out = engine(xc, tc)
            elif self.class_label is None:
                out = self.net(xc, tc)
            else:
                out = self.net(xc, tc, torch.full_like(tc, self.class_label))
            outs.append(self._keep_mean_channels(out, xc).to(out_dtype))
            if report and step < n:
                report_fraction(min(i + step, n) / n)
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
    return {k: overrides[k] for k in ("clip_x0", "chunk_size", "learned_sigma", "tile", "tile_overlap") if k in overrides}


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
