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

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import UserError
from ..solvers import admm_tv_defaults, solve_admm_tv, solve_cg

__all__ = [
    "Method", "METHODS", "METHOD_OPTIONS", "CLASSICAL_METHODS", "BLIND_METHODS", "PRECISIONS", "prior_dtype", "resolve_device",
    "get_method", "check_options", "NOISY_DIFFUSION", "DIFFUSION_INIT", "DIFFIR2VR_BASE", "parse_warp_period", "option_flag",
]


def resolve_device(device: str | None) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N``; a clear error when CUDA is not available."""
    name = device or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available on this machine")
    return dev


#: ``--precision`` names and the prior's parameter dtype. bf16 runs the bundled prior about 2x
#: faster on CPUs with AVX512-BF16 (the eps error is ~0.004 RMS; see the README's precision note);
#: fp16 is meant for CUDA.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def prior_dtype(precision: str | None) -> torch.dtype:
    """dtype for a ``--precision`` name (``None``: float32); UserError for unknown names."""
    name = precision or "fp32"
    if name not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    return PRECISIONS[name]


@dataclass(frozen=True)
class Method:
    """A restoration method.

    Attributes:
        run: ``run(op, y, sigma_y, options, callback, *, frame_ids, state) -> x`` (see the module
            docstring).
        steps: ``steps(options) -> int``: callback calls per window (progress bars).
        options: Names of the options the method takes (keys of ``options``).
        defaults: Default options (merged under the given ones).
        setup: ``setup(options, device) -> state`` loads heavy objects (a prior, a network)
            once per worker; ``None``: no state.
        window: Default frames per temporal window (``None``: the whole clip).
        blind: The method restores without an operator (``op`` is the identity).
    """

    run: Callable[..., torch.Tensor]
    steps: Callable[[dict], int]
    options: tuple[str, ...]
    defaults: dict = field(default_factory=dict)
    setup: Callable[[dict, torch.device], Any] | None = None
    window: int | None = None
    blind: bool = False


def option_flag(name: str) -> str:
    """The command-line flag of an option key (``cg_steps`` -> ``--cg-steps``)."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------- classical


def _run_cg(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
    lam = o.get("lam", 0.0 if sigma_y == 0 else float(sigma_y))
    return solve_cg(op, y, lam=lam, max_iter=o["iters"], callback=callback)


def _run_admm(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
    kw = admm_tv_defaults(sigma_y)
    if "lam" in o:
        kw["lam"] = o["lam"]
    return solve_admm_tv(op, y, **kw, max_iter=o["iters"], cg_iter=o.get("cg_iter", 5), callback=callback)


def _run_baseline(name: str):
    """Interpolation (``bicubic``, ``lanczos``) and block-matching denoisers (``bm3d`` per
    frame, ``bm4d`` per clip) from :mod:`vidrestore.solvers.baselines`."""

    def run(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
        from ..solvers import baselines

        if name in ("bicubic", "lanczos"):
            return baselines.solve_lift(op, y, kernel=name, callback=callback)
        solve = baselines.solve_bm3d if name == "bm3d" else baselines.solve_bm4d
        x = solve(op, y, sigma_y=float(o.get("sigma", sigma_y)))
        callback({"i": 0})
        return x

    return run


# ----------------------------------------------------------------------------- diffusion


def _setup_prior(o, device):
    from ..priors import load_prior

    return {"prior": load_prior(o.get("prior", "default"), device=device, dtype=prior_dtype(o.get("precision")))}


def _steps_only(callback):
    """The solvers also report non-step events; the progress callback counts steps only."""

    def step_cb(info):
        if "i" in info:
            callback(info)

    return step_cb


#: Noisy-measurement defaults of ``-m svi`` / ``-m dds`` (used when sigma_y > 0 and the option is
#: not given): start at t = 100 from the lifted measurement and weight the DDS data step
#: (I + g A^T A) v = x0 + g A^T y by g = gamma (sigma_t / sigma_y)^2 (DiffPIR's rho_t, Zhu et al.
#: 2023). The measurements behind the choice are in docs/diffusion_defaults.md.
NOISY_DIFFUSION = {"t_start": 100, "gamma": 0.3, "gamma_schedule": "sigma"}

#: Start timestep of ``-m svi`` / ``-m dds`` for noiseless measurements.
NOISELESS_T_START = 500

#: Initial estimate of ``-m svi`` / ``-m dds`` noised to ``t_start`` (``solve_svi``'s ``init``).
DIFFUSION_INIT = "lift"

#: Base per-frame DDS of ``-m diffir2vr`` (the table's frame-by-frame rows use the same). Picked
#: on ``bigbuckbunny`` (not the evaluation clip) by ``benchmarks/diffir2vr_base_sweep.py``; see the
#: README's DiffIR2VR section. ``gamma_schedule="sigma"``: data weight ``gamma (sigma_t / sigma_y)^2``
#: (DiffPIR), so one ``gamma`` fits every noise level; unused when ``sigma_y == 0``.
DIFFIR2VR_BASE = {"eta": 0.8, "cg_steps": 20, "t_start": 100, "gamma": 0.3, "gamma_schedule": "sigma"}


def _diffusion(kind: str):
    """SVI (batch-consistent DDS), per-frame DDS and DPS with an image prior on one clip or one
    temporal window; clips longer than ``window`` frames are split into exact temporal windows
    by the caller (solvers/windows.py, workflows/scale.py)."""

    def run(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
        from ..solvers import solve_dds, solve_dps, solve_svi

        prior = (state or _setup_prior(o, y.device))["prior"]
        kw = {"steps": o["steps"], "sigma_y": sigma_y, "seed": o.get("seed", 0), "frame_ids": frame_ids}
        if kind == "dps":
            fn = functools.partial(solve_dps, prior)
            kw["zeta"] = o.get("zeta", 1.0)
        else:
            fn = functools.partial(solve_svi if kind == "svi" else solve_dds, prior)
            noisy = float(sigma_y) > 0
            kw.update(eta=o["eta"], cg_steps=o["cg_steps"],
                      t_start=o.get("t_start", NOISY_DIFFUSION["t_start"] if noisy else NOISELESS_T_START),
                      init=o.get("init", DIFFUSION_INIT),
                      gamma=o.get("gamma", NOISY_DIFFUSION["gamma"]),
                      gamma_schedule=o.get("gamma_schedule", NOISY_DIFFUSION["gamma_schedule"]))
        return fn(op, y, callback=_steps_only(callback), **kw)

    return run


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


def _run_diffir2vr(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
    """DiffIR2VR-Zero (Yeh et al., arXiv 2407.01519) around a per-frame base solver (dds or dps)
    with the bundled prior, on one clip or one temporal window (windows: 30 frames by default).
    Wrapper defaults: :class:`~vidrestore.consistency.DiffIR2VRConfig` (``--paper`` settings:
    batch 10, warping in the first 10 % of the steps, nearest)."""
    from ..consistency import DiffIR2VRConfig, solve_diffir2vr

    base = o.get("base", "dds")
    if base not in ("dds", "dps"):
        raise UserError(f"--base must be dds or dps, got {base!r}")
    prior = (state or _setup_prior(o, y.device))["prior"]
    cfg = DiffIR2VRConfig.paper() if o.get("paper") else DiffIR2VRConfig()
    changes = {k: o[k] for k in ("batch_size", "keyframe", "warp_mode", "warp_strength") if o.get(k) is not None}
    if o.get("warp_period") is not None:
        changes["warp_period"] = parse_warp_period(o["warp_period"])
    if o.get("merge_ratio") is not None:
        changes["merge_ratio"] = (float(o["merge_ratio"]), 0.0)
    cfg = cfg.with_options(seed=int(o.get("seed", 0)), **changes)
    kw = {"steps": _diffir2vr_steps(o), "sigma_y": sigma_y, "seed": o.get("seed", 0), "frame_ids": frame_ids}
    if base == "dps":
        kw["zeta"] = o.get("zeta", 1.0)
    else:
        kw.update({k: o.get(k, v) for k, v in DIFFIR2VR_BASE.items()})
    return solve_diffir2vr(prior, op, y, base=base, config=cfg, callback=_steps_only(callback), **kw)


def _diffir2vr_steps(o: dict) -> int:
    return int(o.get("steps") or (200 if o.get("base") == "dps" else 20))


# ----------------------------------------------------------------------------- blind


def _setup_pvdnet(o, device):
    from .deblur import load_pvdnet

    return {"net": load_pvdnet(o.get("weights"), device)}


def _run_pvdnet(op, y, sigma_y, o, callback, *, frame_ids=None, state=None):
    """PVDNet (Son et al., ACM TOG 2021): blind recurrent video deblurring of the whole clip
    (``op`` is the identity); options ``weights`` and ``flow`` (see :mod:`.deblur`)."""
    from .deblur import deblur_video_pvdnet

    net = (state or _setup_pvdnet(o, y.device))["net"]
    x = deblur_video_pvdnet(y, net, flow=o.get("flow"), quiet=True)
    callback({"i": 0})
    return x


# ----------------------------------------------------------------------------- the table

_WINDOWED = ("window", "overlap", "context", "seed")
_PRIOR = ("prior", "precision")
_DDS_OPTIONS = ("steps", "eta", "cg_steps", "t_start", "init", "gamma", "gamma_schedule")
_DIFFIR2VR_OPTIONS = ("base", "steps", "eta", "cg_steps", "t_start", "gamma", "gamma_schedule", "zeta", "paper", "batch_size",
                      "keyframe", "merge_ratio", "warp_period", "warp_mode", "warp_strength")


def _one(o: dict) -> int:
    return 1


def _iters(o: dict) -> int:
    return int(o["iters"])


def _diffusion_steps(o: dict) -> int:
    return int(o["steps"])


METHODS: dict[str, Method] = {
    "cg": Method(_run_cg, _iters, ("iters", "lam") + _WINDOWED, {"iters": 50}),
    "admm-tv": Method(_run_admm, _iters, ("iters", "lam", "cg_iter") + _WINDOWED, {"iters": 40}),
    # Baselines users reach for: interpolation (any operator; only SR factors are undone) and
    # block-matching denoisers (operator 'id', known sigma_y; optional 'sigma' overrides it).
    "bicubic": Method(_run_baseline("bicubic"), _one, _WINDOWED),
    "lanczos": Method(_run_baseline("lanczos"), _one, _WINDOWED),
    "bm3d": Method(_run_baseline("bm3d"), _one, ("sigma",) + _WINDOWED),
    "bm4d": Method(_run_baseline("bm4d"), _one, ("sigma",) + _WINDOWED),
    # Defaults for the bundled (small, early) prior: eta 0.8 and 20 CG steps per diffusion step.
    # Noiseless measurements start at t = 500 from the lifted measurement; noisy ones
    # (sigma_y > 0) use NOISY_DIFFUSION (t = 100, sigma-weighted data step), unless t_start /
    # gamma / gamma_schedule are given.
    "svi": Method(_diffusion("svi"), _diffusion_steps, _DDS_OPTIONS + _PRIOR + _WINDOWED, {"steps": 20, "eta": 0.8, "cg_steps": 20}, _setup_prior, 16),
    "dds": Method(_diffusion("dds"), _diffusion_steps, _DDS_OPTIONS + _PRIOR + _WINDOWED, {"steps": 20, "eta": 0.8, "cg_steps": 20}, _setup_prior, 16),
    "dps": Method(_diffusion("dps"), _diffusion_steps, ("steps", "zeta") + _PRIOR + _WINDOWED, {"steps": 200}, _setup_prior, 16),
    # DiffIR2VR-Zero wrapper around per-frame dds (default; base settings DIFFIR2VR_BASE) or dps.
    "diffir2vr": Method(_run_diffir2vr, _diffir2vr_steps, _DIFFIR2VR_OPTIONS + _PRIOR + _WINDOWED, {"base": "dds"}, _setup_prior, 30),
    # Blind video deblurring: no operator, no noise level; the whole clip in one recurrent pass.
    "pvdnet": Method(_run_pvdnet, _one, ("weights", "flow", "seed"), setup=_setup_pvdnet, blind=True),
}

#: Options each method reads from its ``options`` dict (``restore``'s flags, by key).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {name: m.options for name, m in METHODS.items()}

#: Methods without a learned prior (the baselines of the benchmark's comparisons).
CLASSICAL_METHODS = ("cg", "admm-tv", "bicubic", "lanczos", "bm3d", "bm4d")

#: Methods that restore without an operator (blind deblurring networks).
BLIND_METHODS = tuple(name for name, m in METHODS.items() if m.blind)


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; UserError listing the methods for an unknown name."""
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def check_options(name: str, options: dict | None) -> dict:
    """``options`` merged over the defaults of method ``name``; UserError (one line, naming
    the flag) for an option that the method does not take."""
    m = get_method(name)
    given = dict(options or {})
    bad = [k for k in given if k not in m.options]
    if bad:
        raise UserError(f"method {name} does not take {option_flag(bad[0])} (option {bad[0]!r}); it takes {', '.join(option_flag(k) for k in m.options)}")
    return {**m.defaults, **given}
