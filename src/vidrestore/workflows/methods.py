"""The restoration methods: one table from a method name to how it runs.

This module is the leaf of :mod:`vidrestore.workflows`: it imports only the library layers
(solvers, priors, consistency, the PVDNet helpers of :mod:`.deblur`), never the execution
modules. Imports run one way::

    methods -> worker -> distributed -> scale -> jobs -> batch / demo / bench -> cli

Every method has the same ``run`` signature::

    run(op, y, sigma_y, options, callback, *, frame_ids, state) -> x

``op``/``y``: one problem (the whole clip or one temporal window), ``options``: the method's
options merged with its defaults, ``callback``: called after every step, ``frame_ids``: the
absolute frame indices of the window (per-frame noise seeds), ``state``: what ``setup``
returned (``None`` without ``setup``).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, ClassVar

import torch

from ..errors import UserError
from ..solvers import admm_tv_defaults, solve_admm_tv, solve_cg
from ..solvers.svi import AUTO_T_DELTA, SVI_DEFAULTS, T_START_NOISELESS, T_START_NOISY, T_START_NOISY_DDS
from ..tensor import resolve_device
from ..tiling import DEFAULT_TILE_OVERLAP, resolve_tile

__all__ = [
    "Options", "WindowedOptions", "CGOptions", "ADMMTVOptions", "BaselineOptions", "DenoiserOptions", "PriorOptions", "SVIOptions", "DDSOptions",
    "DPSOptions", "DiffIR2VROptions", "PVDNetOptions", "Method", "METHODS", "METHOD_OPTIONS", "CLASSICAL_METHODS", "BLIND_METHODS", "PRECISIONS", "prior_dtype", "prior_precision", "resolve_device",
    "get_method", "make_options", "NOISY_DIFFUSION", "DIFFUSION_INIT", "DIFFIR2VR_BASE", "parse_warp_period", "option_flag",
]


#: ``--precision`` names and the prior's parameter dtype. bf16 runs the bundled prior 2.5x
#: faster on CPUs with AVX512-BF16 (the eps error is ~0.004 RMS; see the README's precision note);
#: fp16 is meant for CUDA. ``auto`` (the default): bf16 on CPUs with native bfloat16, else fp32
#: (:func:`vidrestore.priors.engine.resolve_precision`).
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def prior_precision(precision: str | None, device=None, *, needs_grad: bool = False) -> str:
    """Precision name for a ``--precision`` value (``None``/``"auto"``: bf16 on a CPU with native
    bfloat16, else fp32; fp32 when ``needs_grad``, for solvers that differentiate through the
    prior); UserError for unknown names."""
    from ..priors.engine import resolve_precision

    if needs_grad and (precision or "auto") == "auto":
        return "fp32"
    try:
        return resolve_precision(precision, device)
    except UserError:
        raise UserError(f"--precision must be one of auto, {', '.join(PRECISIONS)}, got {precision!r}") from None


def prior_dtype(precision: str | None, device=None, *, needs_grad: bool = False) -> torch.dtype:
    """dtype for a ``--precision`` value (:func:`prior_precision`)."""
    return PRECISIONS[prior_precision(precision, device, needs_grad=needs_grad)]


@dataclass(frozen=True)
class Options:
    """Options of a method: a frozen dataclass with the one source of its defaults.

    ``None`` in a noise-dependent field means "the default for the measurement's noise level";
    :meth:`for_noise` fills those fields (:attr:`NOISY` when ``sigma_y > 0``, :attr:`NOISELESS`
    otherwise). Build one with the class (``SVIOptions(steps=10)``), from string keys
    (:meth:`from_dict`, the names of ``restore``'s flags) or with :meth:`for_noise`.
    """

    seed: int = 0

    NOISY: ClassVar[dict] = {}
    NOISELESS: ClassVar[dict] = {}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, method: str, values: dict | None) -> "Options":
        """Options from string keys; UserError (one line, naming the flag) for a key that the
        method does not take."""
        given = dict(values or {})
        names = cls.names()
        bad = [k for k in given if k not in names]
        if bad:
            raise UserError(f"method {method} does not take {option_flag(bad[0])} (option {bad[0]!r}); it takes {', '.join(option_flag(k) for k in names)}")
        return cls(**given)

    @classmethod
    def for_noise(cls, sigma_y: float, **changes) -> "Options":
        """The defaults for noise level ``sigma_y`` (pixel units) with ``changes`` applied."""
        return cls(**changes).resolve(sigma_y)

    def resolve(self, sigma_y: float) -> "Options":
        """This object with its unset (``None``) noise-dependent fields filled for ``sigma_y``."""
        defaults = self.NOISY if float(sigma_y) > 0 else self.NOISELESS
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def with_options(self, **changes) -> "Options":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    def num_steps(self) -> int:
        """Callback calls per window (progress bars)."""
        return 1


@dataclass(frozen=True)
class WindowedOptions(Options):
    """Temporal windows: ``window`` frames per solve (``None``: 16 frames, more when the
    operator's temporal support needs it, :func:`~vidrestore.solvers.windows.default_window`;
    clips that short are solved whole), ``overlap`` frames shared by consecutive window cores,
    ``context`` discarded frames per interior edge."""

    window: int | None = None
    overlap: int = 4
    context: int = 0


@dataclass(frozen=True)
class CGOptions(WindowedOptions):
    """``-m cg``: CG on the normal equations; ``lam`` Tikhonov weight (default ``sigma_y``)."""

    iters: int = 50
    lam: float | None = None

    def num_steps(self) -> int:
        return int(self.iters)


@dataclass(frozen=True)
class ADMMTVOptions(WindowedOptions):
    """``-m admm-tv``: ADMM with TV; ``lam`` default from :func:`~vidrestore.solvers.admm_tv_defaults`."""

    iters: int = 40
    lam: float | None = None
    cg_iter: int = 5

    def num_steps(self) -> int:
        return int(self.iters)


@dataclass(frozen=True)
class BaselineOptions(WindowedOptions):
    """``-m bicubic`` / ``-m lanczos``: no options besides the windows."""


@dataclass(frozen=True)
class DenoiserOptions(WindowedOptions):
    """``-m bm3d`` / ``-m bm4d``: ``sigma`` overrides the measurement's noise level."""

    sigma: float | None = None


@dataclass(frozen=True)
class PriorOptions(WindowedOptions):
    """Methods with the diffusion prior: which prior (a bundled name, ``v2`` by default, or
    ``default`` for the first bundled prior; a folder or a checkpoint),
    the dtype of its weights (``fp32``, ``bf16``, ``fp16``; ``None``/``auto``: bf16 on CPUs with
    native bfloat16, else fp32) and the engine of its forward passes (``eager``, ``openvino``;
    ``None``/``auto``: OpenVINO on the CPU when installed; :mod:`vidrestore.priors.engine`)."""

    window: int | None = 16
    #: The bundled prior v2: on the tune split of the evaluation protocol SVI with it was
    #: +0.36 +- 0.12 dB over the first bundled prior (benchmarks/results/svi_prior_v2_tune9.md).
    prior: str = "v2"
    precision: str | None = None
    engine: str | None = None
    #: Spatial tiles of the prior's network calls (:mod:`vidrestore.tiling`): ``"auto"`` tiles
    #: frames above 512 x 512 pixels in 256-pixel tiles, ``"off"``/``0`` never, an integer
    #: that tile side; ``tile_overlap`` pixels are blended between neighbouring tiles.
    tile: Any = "auto"
    tile_overlap: int = DEFAULT_TILE_OVERLAP


@dataclass(frozen=True)
class SVIOptions(PriorOptions):
    """``-m svi`` (:func:`~vidrestore.solvers.solve_svi`, defaults :data:`~vidrestore.solvers.svi.SVI_DEFAULTS`): eta 0.8 and 20 CG steps
    per diffusion step for the bundled prior. Noiseless measurements start at t = 300 from the
    lifted measurement; noisy ones (``sigma_y > 0``) at t = 200 with the sigma-weighted data
    step (``NOISY_DIFFUSION``; docs/diffusion_defaults.md). ``-m dds`` takes the same options
    (:class:`DDSOptions`) but starts noisy measurements at t = 100."""

    steps: int = SVI_DEFAULTS["steps"]
    eta: float = SVI_DEFAULTS["eta"]
    cg_steps: int = SVI_DEFAULTS["cg_steps"]
    #: int, None (the default per noise level) or "auto" (solve_svi's auto_t_start)
    t_start: int | str | None = None
    #: delta of the "auto" start (pixel units)
    auto_delta: float = AUTO_T_DELTA
    init: str = SVI_DEFAULTS["init"]
    gamma: float = SVI_DEFAULTS["gamma"]
    gamma_schedule: str = SVI_DEFAULTS["gamma_schedule"]
    #: svi only: noise correlation between frames (None/1: identical noise, the paper's; 0:
    #: independent); dds always draws independent noise per frame.
    noise_share: float | None = None
    #: Solver of the noisy (proximal) data step: "cg" (``cg_steps`` CG iterations), "exact"
    #: (closed form in the operator's eigenbasis, :func:`~vidrestore.ops.prox_solver`), "auto"
    #: (exact where available, else CG) or "gd"; docs/data_step.md.
    data_step: str = "cg"
    #: svi/dds: the update between diffusion steps, "ddim" (the paper's DDS renoising) or
    #: "dpm++2m" (second-order multistep DPM-Solver++, same NFE; solve_svi's ``sampler``).
    sampler: str = "ddim"
    #: svi only: carry the shared noise along the optical flow (DIS) of the lifted
    #: measurement, from the window's middle frame to every frame (solve_svi's ``noise_flows``).
    noise_flow: bool = False

    NOISY: ClassVar[dict] = {"t_start": T_START_NOISY}
    NOISELESS: ClassVar[dict] = {"t_start": T_START_NOISELESS}

    def num_steps(self) -> int:
        return int(self.steps)


@dataclass(frozen=True)
class DDSOptions(SVIOptions):
    """``-m dds`` (:func:`~vidrestore.solvers.solve_dds`): the options of :class:`SVIOptions`
    (``noise_share`` and ``noise_flow`` do not apply: the noise is independent per frame); noisy
    measurements start at t = 100 (:data:`~vidrestore.solvers.svi.T_START_NOISY_DDS`), the
    start SVI used before it was re-tuned."""

    NOISY: ClassVar[dict] = {"t_start": T_START_NOISY_DDS}


@dataclass(frozen=True)
class DPSOptions(PriorOptions):
    """``-m dps`` (:func:`~vidrestore.solvers.solve_dps`): ``zeta`` step size of the likelihood gradient."""

    steps: int = 200
    zeta: float = 1.0

    def num_steps(self) -> int:
        return int(self.steps)


@dataclass(frozen=True)
class DiffIR2VROptions(PriorOptions):
    """``-m diffir2vr``: the per-frame base (``dds``: ``DIFFIR2VR_BASE``; or ``dps``) and the
    wrapper settings; ``None`` wrapper fields keep :class:`~vidrestore.consistency.DiffIR2VRConfig`
    (or its ``paper()`` settings), ``steps=None`` is 20 for dds and 200 for dps."""

    window: int | None = 30
    base: str = "dds"
    steps: int | None = None
    eta: float = 0.8
    cg_steps: int = 20
    t_start: int = 100
    gamma: float = 0.3
    gamma_schedule: str = "sigma"
    zeta: float = 1.0
    paper: bool = False
    batch_size: int | None = None
    keyframe: str | None = None
    merge_ratio: float | None = None
    warp_period: Any = None
    warp_mode: str | None = None
    warp_strength: float | None = None
    data_step: str = "cg"

    def num_steps(self) -> int:
        return int(self.steps or (200 if self.base == "dps" else 20))


@dataclass(frozen=True)
class PVDNetOptions(Options):
    """``-m pvdnet``: weight folder, bundled name or official release file (``None``: the
    default model), an optional BIMNet (official ``BIMNet.pytorch`` or a folder) replacing the
    model's flow network, and the flow of the pixel volume (``None``: the weights' own)."""

    weights: str | None = None
    bimnet: str | None = None
    flow: str | None = None
    #: Spatial tiles of the whole clip (each tile is deblurred as a video and blended):
    #: ``"auto"`` above 512 x 512 pixels, ``"off"``/``0`` never, or a tile side in pixels.
    #: The do-no-harm steps (colour gain, flow check, re-blur check; see :mod:`.deblur`);
    #: ``False`` returns the network's output as it is.
    guard: bool = True
    tile: Any = "auto"
    tile_overlap: int = DEFAULT_TILE_OVERLAP


@dataclass(frozen=True)
class Method:
    """A restoration method.

    Attributes:
        run: ``run(op, y, sigma_y, options, callback, *, frame_ids, state) -> x`` (see the module
            docstring); ``options`` is an instance of ``options``, resolved for ``sigma_y``
            (:meth:`Options.resolve`).
        options: The method's :class:`Options` class (names and defaults of its options).
        setup: ``setup(options, device) -> state`` loads heavy objects (a prior, a network)
            once per worker; ``None``: no state.
        blind: The method restores without an operator (``op`` is the identity).
    """

    run: Callable[..., torch.Tensor]
    options: type[Options]
    setup: Callable[[Options, torch.device], Any] | None = None
    blind: bool = False


def option_flag(name: str) -> str:
    """The command-line flag of an option key (``cg_steps`` -> ``--cg-steps``)."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------- classical


def _run_cg(op, y, sigma_y, o: CGOptions, callback, *, frame_ids=None, state=None):
    lam = o.lam if o.lam is not None else (0.0 if sigma_y == 0 else float(sigma_y))
    return solve_cg(op, y, lam=lam, max_iter=o.iters, callback=callback)


def _run_admm(op, y, sigma_y, o: ADMMTVOptions, callback, *, frame_ids=None, state=None):
    kw = admm_tv_defaults(sigma_y)
    if o.lam is not None:
        kw["lam"] = o.lam
    return solve_admm_tv(op, y, **kw, max_iter=o.iters, cg_iter=o.cg_iter, callback=callback)


def _run_baseline(name: str):
    """Interpolation (``bicubic``, ``lanczos``) and block-matching denoisers (``bm3d`` per
    frame, ``bm4d`` per clip) from :mod:`vidrestore.solvers.baselines`."""

    def run(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
        from ..solvers import baselines

        if name in ("bicubic", "lanczos"):
            return baselines.solve_lift(op, y, kernel=name, callback=callback)
        solve = baselines.solve_bm3d if name == "bm3d" else baselines.solve_bm4d
        x = solve(op, y, sigma_y=float(o.sigma if o.sigma is not None else sigma_y))
        callback({"i": 0})
        return x

    return run


# ----------------------------------------------------------------------------- diffusion


def _setup_prior(o: PriorOptions, device):
    from ..priors import load_prior
    from ..priors.engine import resolve_engine

    needs_grad = isinstance(o, DPSOptions) or (isinstance(o, DiffIR2VROptions) and o.base == "dps")
    # DPS differentiates through the prior and DiffIR2VR merges tokens inside its attention
    # layers: both need the PyTorch network itself.
    needs_eager = needs_grad or isinstance(o, DiffIR2VROptions)
    precision = prior_precision(o.precision, device, needs_grad=needs_grad)
    dtype = PRECISIONS[precision]
    if needs_eager and (o.engine or "auto") not in ("auto", "eager"):
        raise UserError(f"--engine {o.engine} cannot run this method (it needs the PyTorch network: gradients or token merging); use --engine eager")
    engine = "eager" if needs_eager else resolve_engine(o.engine, device)
    if engine == "eager":
        return {"prior": load_prior(o.prior, device=device, dtype=dtype)}
    # the engine converts the float32 network; the PyTorch copy (for gradient calls) then
    # takes the run's dtype
    prior = load_prior(o.prior, device=device, dtype=torch.float32)
    prior.set_engine(engine, precision)
    return {"prior": prior.to(dtype=dtype)}


def _tiled_prior(prior, o: PriorOptions, op, y):
    """``prior`` running its network on spatial tiles when ``o.tile`` asks for it at the frame
    size of the solution (a shallow copy sharing the network; ``prior`` itself is unchanged)."""
    h, w = op.input_shape(tuple(y.shape))[-2:]
    side = resolve_tile(o.tile, h, w)
    if o.tile_overlap < 0:
        raise UserError(f"--tile-overlap must be at least 0, got {o.tile_overlap}")
    if side is None or (side >= h and side >= w):
        return prior
    if side % prior.multiple:
        raise UserError(f"--tile must be a multiple of {prior.multiple} for prior {prior.name!r}, got {side}")
    if o.tile_overlap >= side:
        raise UserError(f"--tile-overlap must be below the tile side {side}, got {o.tile_overlap}")
    tiled = copy.copy(prior)
    tiled.tile, tiled.tile_overlap = side, int(o.tile_overlap)
    return tiled


def _steps_only(callback):
    """The solvers also report non-step events; the progress callback counts steps only."""

    def step_cb(info):
        if "i" in info:
            callback(info)

    return step_cb


def _diffusion(kind: str):
    """SVI (batch-consistent DDS), per-frame DDS and DPS with an image prior on one clip or one
    temporal window; clips longer than ``window`` frames are split into exact temporal windows
    by the caller (solvers/windows.py, workflows/scale.py)."""

    def run(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
        from ..solvers import solve_dds, solve_dps, solve_svi

        prior = _tiled_prior((state or _setup_prior(o, y.device))["prior"], o, op, y)
        kw = {"steps": o.steps, "sigma_y": sigma_y, "seed": o.seed, "frame_ids": frame_ids}
        if kind == "dps":
            fn = functools.partial(solve_dps, prior)
            kw["zeta"] = o.zeta
        else:
            fn = functools.partial(solve_svi if kind == "svi" else solve_dds, prior)
            kw.update(eta=o.eta, cg_steps=o.cg_steps, t_start=o.t_start, auto_delta=o.auto_delta, init=o.init, gamma=o.gamma, gamma_schedule=o.gamma_schedule, data_step=o.data_step)
            if o.sampler != "ddim":
                kw["sampler"] = o.sampler
            if kind == "svi" and o.noise_share is not None:
                kw["noise_share"] = o.noise_share
            if kind == "svi" and o.noise_flow:
                kw["noise_flows"] = _lift_flows(op, y)
        return fn(op, y, callback=_steps_only(callback), **kw)

    return run


def _lift_flows(op, y) -> torch.Tensor:
    """Backward DIS flows ``(1, 2, T, H, W)`` from every frame of the lifted measurement to its
    middle frame (the reference of flow-transported noise)."""
    from ..flow import estimate_flow

    lift = op.lift(y).clamp(0, 1).float().cpu()
    t = lift.shape[2]
    ref = lift[:1, :, t // 2]
    flows = [torch.zeros(1, 2, *lift.shape[-2:]) if f == t // 2 else estimate_flow(lift[:1, :, f], ref) for f in range(t)]
    return torch.stack(flows, dim=2)


def parse_warp_period(value) -> tuple[float, float]:
    """``"END"`` -> ``(0, END)``; ``"START:END"`` -> ``(START, END)``; fractions of the steps."""
    if isinstance(value, (tuple, list)):
        parts = [str(v) for v in value]
    else:
        parts = str(value).split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"--warp-period must be END or START:END (fractions of the steps), got {value!r}") from None
    if len(nums) == 1:
        nums = [0.0] + nums
    if len(nums) != 2 or not 0.0 <= nums[0] <= nums[1] <= 1.0:
        raise UserError(f"--warp-period must be END or START:END with 0 <= START <= END <= 1, got {value!r}")
    return nums[0], nums[1]


def _run_diffir2vr(op, y, sigma_y, o: DiffIR2VROptions, callback, *, frame_ids=None, state=None):
    """DiffIR2VR-Zero (Yeh et al., arXiv 2407.01519) around a per-frame base solver (dds or dps)
    with the bundled prior, on one clip or one temporal window (windows: 30 frames by default).
    Wrapper defaults: :class:`~vidrestore.consistency.DiffIR2VRConfig` (``paper`` settings:
    batch 10, warping in the first 10 % of the steps, nearest)."""
    from ..consistency import DiffIR2VRConfig, solve_diffir2vr

    if o.base not in ("dds", "dps"):
        raise UserError(f"--base must be dds or dps, got {o.base!r}")
    if o.tile not in ("auto", None, 0, "0", "off"):
        raise UserError("diffir2vr does not tile frames (its flow-guided token merging needs whole frames); use --tile auto or off")
    prior = (state or _setup_prior(o, y.device))["prior"]
    cfg = DiffIR2VRConfig.paper() if o.paper else DiffIR2VRConfig()
    changes = {k: getattr(o, k) for k in ("batch_size", "keyframe", "warp_mode", "warp_strength") if getattr(o, k) is not None}
    if o.warp_period is not None:
        changes["warp_period"] = parse_warp_period(o.warp_period)
    if o.merge_ratio is not None:
        changes["merge_ratio"] = (float(o.merge_ratio), 0.0)
    cfg = cfg.with_options(seed=int(o.seed), **changes)
    kw = {"steps": o.num_steps(), "sigma_y": sigma_y, "seed": o.seed, "frame_ids": frame_ids}
    if o.base == "dps":
        kw["zeta"] = o.zeta
    else:
        kw.update({k: getattr(o, k) for k in DIFFIR2VR_BASE}, data_step=o.data_step)
    return solve_diffir2vr(prior, op, y, base=o.base, config=cfg, callback=_steps_only(callback), **kw)


#: Noisy-measurement defaults of ``-m svi`` (from :class:`SVIOptions`; ``-m dds`` starts at
#: t = 100, :class:`DDSOptions`): start at t = 200 from the lifted measurement and weight the DDS data step (I + g A^T A) v = x0 + g A^T y
#: by g = gamma (sigma_t / sigma_y)^2 (DiffPIR's rho_t, Zhu et al. 2023); docs/diffusion_defaults.md.
NOISY_DIFFUSION = {"t_start": SVIOptions.NOISY["t_start"], "gamma": SVIOptions.gamma, "gamma_schedule": SVIOptions.gamma_schedule}

#: Initial estimate of ``-m svi`` / ``-m dds`` noised to ``t_start`` (``solve_svi``'s ``init``).
DIFFUSION_INIT = SVIOptions.init

#: Base per-frame DDS of ``-m diffir2vr`` (from :class:`DiffIR2VROptions`; the table's
#: frame-by-frame rows use the same). Picked on ``bigbuckbunny`` (not the evaluation clip) by
#: ``benchmarks/diffir2vr_base_sweep.py``. ``gamma_schedule="sigma"``: data weight
#: ``gamma (sigma_t / sigma_y)^2`` (DiffPIR), so one ``gamma`` fits every noise level.
DIFFIR2VR_BASE = {k: getattr(DiffIR2VROptions, k) for k in ("eta", "cg_steps", "t_start", "gamma", "gamma_schedule")}


# ----------------------------------------------------------------------------- blind


def _setup_pvdnet(o: PVDNetOptions, device):
    from .deblur import load_pvdnet

    return {"net": load_pvdnet(o.weights, device, bimnet=o.bimnet)}


def _run_pvdnet(op, y, sigma_y, o: PVDNetOptions, callback, *, frame_ids=None, state=None):
    """PVDNet (Son et al., ACM TOG 2021): blind recurrent video deblurring of the whole clip
    (``op`` is the identity); options ``weights``, ``flow`` and the spatial ``tile`` (see
    :mod:`.deblur`)."""
    from .deblur import deblur_stream

    net = (state or _setup_pvdnet(o, y.device))["net"]
    chunks: list[torch.Tensor] = []
    deblur_stream([y], tuple(y.shape), net, chunks.append, flow=o.flow, quiet=True, tile=o.tile, tile_overlap=o.tile_overlap, guard=o.guard)
    callback({"i": 0})
    return torch.cat(chunks, 2)


# ----------------------------------------------------------------------------- the table

METHODS: dict[str, Method] = {
    "cg": Method(_run_cg, CGOptions),
    "admm-tv": Method(_run_admm, ADMMTVOptions),
    # Baselines users reach for: interpolation (any operator; only SR factors are undone) and
    # block-matching denoisers (operator 'id', known sigma_y; optional 'sigma' overrides it).
    "bicubic": Method(_run_baseline("bicubic"), BaselineOptions),
    "lanczos": Method(_run_baseline("lanczos"), BaselineOptions),
    "bm3d": Method(_run_baseline("bm3d"), DenoiserOptions),
    "bm4d": Method(_run_baseline("bm4d"), DenoiserOptions),
    "svi": Method(_diffusion("svi"), SVIOptions, _setup_prior),
    "dds": Method(_diffusion("dds"), DDSOptions, _setup_prior),
    "dps": Method(_diffusion("dps"), DPSOptions, _setup_prior),
    # DiffIR2VR-Zero wrapper around per-frame dds (default; base settings DIFFIR2VR_BASE) or dps.
    "diffir2vr": Method(_run_diffir2vr, DiffIR2VROptions, _setup_prior),
    # Blind video deblurring: no operator, no noise level; the whole clip in one recurrent pass.
    "pvdnet": Method(_run_pvdnet, PVDNetOptions, _setup_pvdnet, blind=True),
}

#: Options each method takes (``restore``'s flags, by key).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {name: m.options.names() for name, m in METHODS.items()}

#: Methods without a learned prior (the baselines of the benchmark's comparisons).
CLASSICAL_METHODS = ("cg", "admm-tv", "bicubic", "lanczos", "bm3d", "bm4d")

#: Methods that restore without an operator (blind deblurring networks).
BLIND_METHODS = tuple(name for name, m in METHODS.items() if m.blind)


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; UserError listing the methods for an unknown name."""
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def make_options(name: str, options: Options | dict | None = None, **changes) -> Options:
    """The options of method ``name``: an instance of its :class:`Options` class, or one
    built from string keys (UserError naming the flag for a key the method does not take),
    with ``changes`` applied."""
    cls = get_method(name).options
    if isinstance(options, Options):
        if not isinstance(options, cls):
            raise UserError(f"method {name} takes {cls.__name__}, got {type(options).__name__}")
        return replace(options, **changes)
    return cls.from_dict(name, {**(options or {}), **changes})
