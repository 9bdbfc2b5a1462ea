"""``vidrestore bench``: a declared evaluation protocol over real clips, with a tune/test split.

The protocol (YAML, :func:`load_protocol`) names clips, splits them into a *tune* set and a
*test* set, and lists tasks (operator + noise level) and methods (a restore method with
options, optionally a ``tune`` grid). :func:`run_bench` then

1. **tunes** on the tune split only: every point of each method's grid is run on every tune
   clip and seed, and the point with the best mean PSNR is kept per task (``tuned.json``).
   Classical methods always run on the tune split (at their chosen point), so that the
   reference "best classical method" of a task is chosen there, not on the test split;
2. **tests** the chosen settings on the test split (the test clips are read only now);
3. runs **equal-budget** variants (``budget: {match: METHOD}``): an iterative method whose
   ``iters`` is set per problem so that its operator applications (``a_calls``) equal those
   of ``METHOD`` on the same clip, task and seed;
4. writes ``runs.csv`` (one row per size x clip x task x method x seed x setting, both
   splits, rewritten atomically after each run, so ``resume`` skips finished runs),
   ``summary.md`` (test split only: means with 95 % intervals, paired differences to the best
   classical method, the ground truth's own warping error) and one PNG per frame size.

Intervals: seeds are averaged within a clip first, and the Student-t interval is taken over
clips (the clip is the unit of replication; seeds of one clip are not independent).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..diffusion import count_evaluations
from ..errors import UserError
from ..io import atomic_write_text, read_video
from ..metrics import compute_ref_flows, video_metrics, warp_error
from ..ops import Identity, count_applications, measure, parse
from ..ops.base import Composition
from ..ops.resize import Downsample
from .jobs import parse_size
from .methods import CLASSICAL_METHODS, METHOD_OPTIONS, METHODS
from .scale import restore_video

__all__ = ["BenchClip", "BenchTask", "BenchMethod", "Protocol", "load_protocol", "parse_protocol", "run_bench", "summarize", "write_report", "RUN_COLUMNS"]

#: Columns of ``runs.csv`` in order.
RUN_COLUMNS = ("size", "clip", "split", "task", "method", "setting", "seed", "psnr", "ssim", "warp_error", "seconds", "nfe", "a_calls")

_TOP_KEYS = {"description", "clips", "split", "size", "frames", "seeds", "tune_seeds", "tasks", "methods", "quick", "notes"}
_QUICK_KEYS = {"size", "frames", "seeds", "tune_seeds", "tasks", "methods"}
_TASK_KEYS = {"op", "sigma_y", "sizes", "label"}
_METHOD_KEYS = {"method", "tune", "tasks", "budget", "label"}


@dataclass(frozen=True)
class BenchClip:
    """A clip of the protocol: ``path`` (video file or frame folder) and first frame ``start``."""

    name: str
    path: str
    start: int = 0


@dataclass(frozen=True)
class BenchTask:
    """An operator spec and noise level; ``sizes`` restricts the frame sizes (None: all)."""

    name: str
    op: str
    sigma_y: float
    sizes: tuple[tuple[int, int], ...] | None = None
    label: str = ""


@dataclass(frozen=True)
class BenchMethod:
    """A restore method with fixed ``options``, a tuning ``grid`` (option -> values), the
    ``tasks`` it runs on (None: every task it applies to) and an optional equal-budget rule
    ``budget_match`` (the name of another protocol method whose ``a_calls`` it matches)."""

    name: str
    method: str
    options: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None
    budget_match: str | None = None
    budget_like: str | None = None
    label: str = ""

    @property
    def classical(self) -> bool:
        return self.method in CLASSICAL_METHODS

    def settings(self) -> list[dict]:
        """Every point of the grid (one empty setting when there is no grid)."""
        if not self.grid:
            return [{}]
        keys = list(self.grid)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]


@dataclass
class Protocol:
    """A parsed protocol file (see the module docstring and ``benchmarks/protocol.yaml``)."""

    clips: dict[str, BenchClip]
    tune: list[str]
    test: list[str]
    sizes: list[tuple[int, int]]
    frames: int
    seeds: list[int]
    tasks: dict[str, BenchTask]
    methods: dict[str, BenchMethod]
    description: str = ""
    source: str = ""
    tune_seeds: list[int] | None = None

    @property
    def tuning_seeds(self) -> list[int]:
        """Seeds of the tuning runs (``tune_seeds``, default: ``seeds``)."""
        return self.tune_seeds if self.tune_seeds is not None else self.seeds

    def split_of(self, clip: str) -> str:
        return "tune" if clip in self.tune else "test"

    def runs_for(self, method: BenchMethod, task: BenchTask, size: tuple[int, int]) -> bool:
        """Whether ``method`` runs on ``task`` at ``size``."""
        if task.sizes is not None and size not in task.sizes:
            return False
        if method.tasks is not None:
            return task.name in method.tasks
        return applies(method.method, task)


def applies(method: str, task: BenchTask) -> bool:
    """Baselines that only make sense for some operators: interpolation needs an ``sr``
    factor; block-matching denoisers need the identity operator and noise."""
    op = parse(task.op, seed=0)
    factors = list(op.ops) if isinstance(op, Composition) else [op]
    if method in ("bicubic", "lanczos"):
        return any(isinstance(f, Downsample) for f in factors)
    if method in ("bm3d", "bm4d"):
        return all(isinstance(f, Identity) for f in factors) and task.sigma_y > 0
    return True


# ------------------------------------------------------------------------------ parsing


def _err(source: str, msg: str) -> UserError:
    return UserError(f"protocol {source}: {msg}")


def _as_list(value, what: str, source: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise _err(source, f"{what} must be a list, got {value!r}")


def _sizes(value, source: str, what: str = "size") -> list[tuple[int, int]]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        try:
            size = parse_size(str(v), what)
        except UserError as e:
            raise _err(source, str(e)) from None
        if size[0] % 8 or size[1] % 8:
            raise _err(source, f"{what} {v!r}: both sides must be multiples of 8 (the priors' requirement)")
        out.append(size)
    if not out:
        raise _err(source, f"{what} is empty")
    return out


def _resolve_path(text: str, base: Path, source: str, name: str) -> str:
    if text.startswith("sample:"):
        from ..data.samples import sample_path

        try:
            return str(sample_path(text.split(":", 1)[1]))
        except UserError as e:
            raise _err(source, f"clip {name!r}: {e}") from None
    expanded = os.path.expandvars(os.path.expanduser(text))
    if "$" in expanded:
        return expanded  # an unset variable: reported when the clip is read (load_clip)
    p = Path(expanded)
    return str(p if p.is_absolute() else base / p)


def parse_protocol(data: Any, *, source: str = "<protocol>", base: str | Path = ".", quick: bool = False) -> Protocol:
    """Validate a protocol mapping (already parsed from YAML); ``quick`` applies its ``quick``
    block. Raises :class:`UserError` naming the problem."""
    if not isinstance(data, dict):
        raise _err(source, "the top level must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(source, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("clips", "split", "size", "frames", "seeds", "tasks", "methods"):
        if key not in data:
            raise _err(source, f"missing key {key!r}")
    base = Path(base)
    data = dict(data)
    if quick:
        q = data.get("quick") or {}
        if not isinstance(q, dict) or set(q) - _QUICK_KEYS:
            raise _err(source, f"quick must be a mapping with keys among {', '.join(sorted(_QUICK_KEYS))}")
        for key in ("size", "frames", "seeds", "tune_seeds"):
            if key in q:
                data[key] = q[key]
        for key in ("tasks", "methods"):
            if key in q:
                keep = _as_list(q[key], f"quick.{key}", source)
                missing = [k for k in keep if k not in (data[key] or {})]
                if missing:
                    raise _err(source, f"quick.{key} names unknown {key} {', '.join(map(str, missing))}")
                data[key] = {k: v for k, v in data[key].items() if k in keep}

    # clips and split
    if not isinstance(data["clips"], dict) or not data["clips"]:
        raise _err(source, "clips must be a non-empty mapping name -> path")
    clips = {}
    for name, entry in data["clips"].items():
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry or set(entry) - {"path", "start", "source", "licence"}:
            raise _err(source, f"clip {name!r} must be a path or {{path, start}}")
        start = entry.get("start", 0)
        if not isinstance(start, int) or start < 0:
            raise _err(source, f"clip {name!r}: start must be an integer >= 0")
        clips[str(name)] = BenchClip(str(name), _resolve_path(str(entry["path"]), base, source, name), start)
    split = data["split"]
    if not isinstance(split, dict) or set(split) - {"tune", "test"} or not {"tune", "test"} <= set(split):
        raise _err(source, "split must have exactly the keys tune and test")
    tune = [str(c) for c in _as_list(split["tune"], "split.tune", source)]
    test = [str(c) for c in _as_list(split["test"], "split.test", source)]
    for c in tune + test:
        if c not in clips:
            raise _err(source, f"split names unknown clip {c!r}; clips: {', '.join(clips)}")
    both = sorted(set(tune) & set(test))
    if both:
        raise _err(source, f"clip(s) {', '.join(both)} are in both the tune and the test split")
    if not tune or not test:
        raise _err(source, "both splits need at least one clip")

    sizes = _sizes(data["size"], source)
    frames = data["frames"]
    if not isinstance(frames, int) or frames < 1:
        raise _err(source, f"frames must be a positive integer, got {frames!r}")
    seeds = _as_list(data["seeds"], "seeds", source)
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise _err(source, f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    tune_seeds = data.get("tune_seeds")
    if tune_seeds is not None:
        tune_seeds = _as_list(tune_seeds, "tune_seeds", source)
        if not tune_seeds or not all(isinstance(s, int) and s >= 0 for s in tune_seeds):
            raise _err(source, f"tune_seeds must be a non-empty list of integers >= 0, got {tune_seeds!r}")

    # tasks
    if not isinstance(data["tasks"], dict) or not data["tasks"]:
        raise _err(source, "tasks must be a non-empty mapping name -> {op, sigma_y}")
    tasks = {}
    for name, t in data["tasks"].items():
        if not isinstance(t, dict) or "op" not in t or set(t) - _TASK_KEYS:
            raise _err(source, f"task {name!r} must be a mapping with op (and sigma_y, sizes, label)")
        sigma = t.get("sigma_y", 0.0)
        if not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
            raise _err(source, f"task {name!r}: sigma_y must be a finite number >= 0")
        try:
            parse(str(t["op"]), seed=0, num_frames=frames)
        except UserError as e:
            raise _err(source, f"task {name!r}: {e}") from None
        # the quick block has a single size of its own: task size lists do not apply there
        tsizes = tuple(_sizes(t["sizes"], source, f"task {name!r} sizes")) if t.get("sizes") is not None and not quick else None
        if tsizes and set(tsizes) - set(sizes):
            raise _err(source, f"task {name!r} names a size that is not in size")
        tasks[str(name)] = BenchTask(str(name), str(t["op"]), float(sigma), tsizes, str(t.get("label", "")))

    # methods
    if not isinstance(data["methods"], dict) or not data["methods"]:
        raise _err(source, "methods must be a non-empty mapping name -> {method, options...}")
    methods = {}
    for name, m in data["methods"].items():
        if not isinstance(m, dict) or "method" not in m:
            raise _err(source, f"method {name!r} must be a mapping with a 'method' key")
        kind = str(m["method"])
        if kind not in METHODS:
            raise _err(source, f"method {name!r}: unknown method {kind!r}; choose one of {', '.join(METHODS)}")
        allowed = set(METHOD_OPTIONS[kind]) - {"seed"}
        options = {k: v for k, v in m.items() if k not in _METHOD_KEYS}
        bad = sorted(set(options) - allowed)
        if bad:
            raise _err(source, f"method {name!r}: unknown option(s) {', '.join(bad)} for {kind}; allowed: {', '.join(sorted(allowed))}")
        grid = m.get("tune") or {}
        if not isinstance(grid, dict):
            raise _err(source, f"method {name!r}: tune must be a mapping option -> [values]")
        for opt, values in grid.items():
            if opt not in allowed:
                raise _err(source, f"method {name!r}: unknown option {opt!r} in its tune grid for {kind}; allowed: {', '.join(sorted(allowed))}")
            if not isinstance(values, list) or not values:
                raise _err(source, f"method {name!r}: tune.{opt} must be a non-empty list")
            if opt in options:
                raise _err(source, f"method {name!r}: {opt} is both fixed and in the tune grid")
        mtasks = m.get("tasks")
        if mtasks is not None:
            mtasks = tuple(str(t) for t in _as_list(mtasks, f"method {name!r} tasks", source))
            unknown_t = [t for t in mtasks if t not in tasks]
            if unknown_t and not quick:
                raise _err(source, f"method {name!r} names unknown task(s) {', '.join(unknown_t)}")
            mtasks = tuple(t for t in mtasks if t in tasks)
        budget = m.get("budget")
        match = like = None
        if budget is not None:
            if not isinstance(budget, dict) or "match" not in budget or set(budget) - {"match", "like"}:
                raise _err(source, f"method {name!r}: budget must be {{match: METHOD, like: METHOD (optional)}}")
            match = str(budget["match"])
            like = str(budget["like"]) if budget.get("like") is not None else None
            if kind not in ("cg", "admm-tv"):
                raise _err(source, f"method {name!r}: an equal budget needs an iterative method (cg or admm-tv), got {kind}")
            if "iters" in options or "iters" in grid:
                raise _err(source, f"method {name!r}: iters is set by the budget; remove it")
        methods[str(name)] = BenchMethod(str(name), kind, options, grid, mtasks, match, like, str(m.get("label", "")))
    for bm in methods.values():
        if bm.budget_like is not None and (bm.budget_like not in methods or methods[bm.budget_like].method != bm.method):
            raise _err(source, f"method {bm.name!r}: budget.like must name a {bm.method} method of the protocol, got {bm.budget_like!r}")
        if bm.budget_match is not None and (bm.budget_match not in methods or methods[bm.budget_match].budget_match):
            if not quick or bm.budget_match in data["methods"]:
                raise _err(source, f"method {bm.name!r}: budget.match names {bm.budget_match!r}, which is not a method without a budget")
    methods = {k: v for k, v in methods.items() if v.budget_match is None or v.budget_match in methods}
    return Protocol(clips, tune, test, sizes, frames, [int(s) for s in seeds], tasks, methods, str(data.get("description", "")), source,
                    None if tune_seeds is None else [int(s) for s in tune_seeds])


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"protocol file not found: {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read protocol {path}: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()
        raise UserError(f"protocol {path}: invalid YAML: {' '.join(first[:3])}") from None


#: Top-level keys whose mappings an ``extends`` protocol merges into its base's (name by name);
#: every other key it sets replaces the base's value.
_MERGED_KEYS = ("clips", "tasks", "methods")


def load_protocol(path: str | Path, *, quick: bool = False) -> Protocol:
    """Read and validate a protocol YAML file (relative clip paths are relative to it).

    A protocol may start from another one with ``extends: OTHER.yaml`` (relative to its own
    folder): its ``clips``, ``tasks`` and ``methods`` are added to (or replace by name) the
    base's, and any other key replaces the base's value. The base's clip paths stay relative to
    the base. A run of the extended protocol resumed from the base's ``runs.csv`` only runs what
    the extension adds (for example one more method)."""
    path = Path(path)
    data = _read_yaml(path)
    base = path.parent
    if isinstance(data, dict) and "extends" in data:
        parent_path = base / str(data["extends"])
        parent = _read_yaml(parent_path)
        if not isinstance(parent, dict):
            raise _err(str(parent_path), "the top level must be a mapping")
        if "extends" in parent:
            raise _err(str(path), f"extends {data['extends']!r}, which itself extends another protocol (one level only)")
        merged = dict(parent)
        for key, value in data.items():
            if key == "extends":
                continue
            if key in _MERGED_KEYS and isinstance(value, dict) and isinstance(parent.get(key), dict):
                merged[key] = {**parent[key], **value}
            else:
                merged[key] = value
        if parent_path.parent.resolve() != base.resolve():
            # clip paths of the base stay relative to the base's folder
            def rebased(cpath):
                if not isinstance(cpath, str) or cpath.startswith(("sample:", "$", "/")):
                    return cpath
                return str((parent_path.parent / cpath).resolve())

            for name, clip in (parent.get("clips") or {}).items():
                if merged["clips"].get(name) is clip:
                    merged["clips"][name] = {**clip, "path": rebased(clip.get("path"))} if isinstance(clip, dict) else rebased(clip)
        data = merged
    return parse_protocol(data, source=str(path), base=base, quick=quick)


# ------------------------------------------------------------------------------ data


def load_clip(clip: BenchClip, size: tuple[int, int], frames: int) -> torch.Tensor:
    """``frames`` frames from ``clip.start``, area-resized to cover ``size`` keeping the aspect
    ratio, then centre-cropped to ``size``: ``(1, 3, frames, H, W)`` in ``[0, 1]``."""
    if "$" in clip.path:
        raise UserError(f"clip {clip.name!r}: {clip.path!r} uses an unset environment variable (fetch the clips with scripts/fetch_eval_clips.sh DIR and set DATA=DIR)")
    try:
        x, _ = read_video(clip.path, start=clip.start, frames=frames)
    except UserError as e:
        raise UserError(f"clip {clip.name!r}: {e}") from None
    h, w = x.shape[-2:]
    th, tw = size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    b, c, t = x.shape[:3]
    frames2d = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    mode = "area" if scale < 1 else "bicubic"
    kw = {} if mode == "area" else {"align_corners": False}
    frames2d = F.interpolate(frames2d, size=(nh, nw), mode=mode, **kw).clamp(0, 1)
    top, left = (nh - th) // 2, (nw - tw) // 2
    frames2d = frames2d[:, :, top : top + th, left : left + tw]
    return frames2d.reshape(b, t, c, th, tw).permute(0, 2, 1, 3, 4).contiguous()


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _setting_text(setting: dict) -> str:
    return json.dumps(setting, sort_keys=True) if setting else ""


# ------------------------------------------------------------------------------ results


class RunTable:
    """``runs.csv``: rows keyed by (size, clip, task, method, setting, seed); atomic rewrite."""

    def __init__(self, path: Path, *, resume: bool):
        self.path = path
        self.rows: dict[tuple, dict] = {}
        if path.exists():
            if not resume:
                raise UserError(f"{path} exists; pass --resume to continue that run or choose another --out")
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) != RUN_COLUMNS:
                    raise UserError(f"{path} has other columns than a vidrestore bench run; choose another --out")
                for row in reader:
                    self.rows[self.key(row)] = row

    @staticmethod
    def key(row: dict) -> tuple:
        return (row["size"], row["clip"], row["task"], row["method"], row["setting"], str(row["seed"]))

    def get(self, key: tuple) -> dict | None:
        return self.rows.get(key)

    def add(self, row: dict) -> None:
        self.rows[self.key(row)] = {k: row[k] for k in RUN_COLUMNS}
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=RUN_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in self.rows.values():
            w.writerow(r)
        atomic_write_text(self.path, buf.getvalue())


def _fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------ running


@dataclass
class _Problem:
    x: torch.Tensor
    y: torch.Tensor
    op: Any
    sigma_y: float


class _Runner:
    def __init__(self, proto: Protocol, table: RunTable, *, device: str | None, progress: Callable[[], None], log: Callable[[str], None]):
        self.p, self.table, self.device, self.tick, self.log = proto, table, device, progress, log
        self._clips: dict[tuple, torch.Tensor] = {}
        self._flows: dict[tuple, Any] = {}
        self.gt_warp: dict[tuple, float] = {}

    def clip(self, name: str, size) -> torch.Tensor:
        key = (name, size)
        if key not in self._clips:
            self._clips[key] = load_clip(self.p.clips[name], size, self.p.frames)
        return self._clips[key]

    def flows(self, name: str, size):
        key = (name, size)
        if key not in self._flows:
            x = self.clip(name, size)
            self._flows[key] = compute_ref_flows(x)
            rf = self._flows[key]
            self.gt_warp[(_size_text(size), name)] = float(warp_error(x, flows=rf.flows, masks=rf.masks))
        return self._flows[key]

    def problem(self, clip: str, task: BenchTask, size, seed: int) -> _Problem:
        # Same seeding as 'vidrestore degrade': operator seed = seed, noise seed = seed + 1.
        x = self.clip(clip, size)
        op = parse(task.op, seed=seed, num_frames=x.shape[2])
        op.check_input(x)
        y = measure(op, x.double(), task.sigma_y, torch.Generator().manual_seed(seed + 1)).float()
        return _Problem(x, y, op, task.sigma_y)

    def run(self, size, clip: str, task: BenchTask, bm: BenchMethod, setting: dict, seed: int, *, extra: dict | None = None, setting_text: str | None = None) -> dict:
        text = _setting_text(setting) if setting_text is None else setting_text
        key = (_size_text(size), clip, task.name, bm.name, text, str(seed))
        done = self.table.get(key)
        if done is not None:
            self.flows(clip, size)  # ground-truth warping error for the summary
            self.tick()
            return done
        prob = self.problem(clip, task, size, seed)
        options = {**bm.options, **setting, **(extra or {}), "seed": seed}
        t0 = time.perf_counter()
        with count_applications() as a_count, count_evaluations() as evals:
            x_hat = restore_video(prob.y, prob.op, method=bm.method, sigma_y=prob.sigma_y, options=options, device=self.device, quiet=True)
        seconds = time.perf_counter() - t0
        rf = self.flows(clip, size)
        m = video_metrics(x_hat.clamp(0, 1), prob.x, ref_flows=rf)
        row = {
            "size": _size_text(size), "clip": clip, "split": self.p.split_of(clip), "task": task.name, "method": bm.name,
            "setting": text, "seed": seed, "psnr": f"{m['psnr']:.4f}", "ssim": f"{m['ssim']:.5f}",
            "warp_error": f"{m['warp_error']:.6e}" if m.get("warp_error") is not None else "",
            "seconds": f"{seconds:.3f}", "nfe": f"{evals.images / prob.x.shape[2]:.2f}", "a_calls": str(a_count.calls),
        }
        self.table.add(row)
        self.tick()
        return row

    def budget_iters(self, size, clip: str, task: BenchTask, bm: BenchMethod, setting: dict, seed: int, target: int) -> int:
        """``iters`` whose ``a_calls`` equal ``target`` (linear fit from 1 and 2 iterations)."""
        prob = self.problem(clip, task, size, seed)
        counts = []
        for iters in (1, 2):
            with count_applications() as n:
                restore_video(prob.y, prob.op, method=bm.method, sigma_y=prob.sigma_y, options={**bm.options, **setting, "iters": iters}, device=self.device, quiet=True)
            counts.append(n.calls)
        per = max(1, counts[1] - counts[0])
        return max(1, 1 + round((target - counts[0]) / per))


def _mean(vals: list[float]) -> float:
    return sum(vals) / len(vals)


def _plan_counts(p: Protocol) -> int:
    n = 0
    for size in p.sizes:
        for task in p.tasks.values():
            for bm in p.methods.values():
                if not p.runs_for(bm, task, size):
                    continue
                if bm.budget_match is not None:
                    n += len(p.test) * len(p.seeds)
                    continue
                if bm.grid or bm.classical:
                    n += len(bm.settings()) * len(p.tune) * len(p.tuning_seeds)
                n += len(p.test) * len(p.seeds)
    return n


def run_bench(
    protocol: Protocol,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run ``protocol`` into ``out_dir`` (see the module docstring); returns
    ``{"runs": N, "summary": path, "tuned": path, "seconds": s}``."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = log or (lambda s: None)
    table = RunTable(out / "runs.csv", resume=resume)
    total = _plan_counts(protocol)
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc="bench runs", disable=quiet, dynamic_ncols=True)
    runner = _Runner(protocol, table, device=device, progress=lambda: bar.update(1), log=log)
    tuned: dict = {"tune_clips": protocol.tune, "seeds": protocol.tuning_seeds, "criterion": "mean PSNR over tune clips and seeds", "choices": {}}
    try:
        # 1. tuning: tune clips only.
        for size in protocol.sizes:
            for task in protocol.tasks.values():
                for bm in protocol.methods.values():
                    if not protocol.runs_for(bm, task, size) or bm.budget_match is not None:
                        continue
                    if not (bm.grid or bm.classical):
                        continue
                    scores = []
                    for setting in bm.settings():
                        bar.set_postfix_str(f"tune {task.name} {bm.name}")
                        vals = [float(runner.run(size, c, task, bm, setting, s)["psnr"]) for c in protocol.tune for s in protocol.tuning_seeds]
                        scores.append((setting, _mean(vals)))
                    best = max(scores, key=lambda sv: sv[1])  # first best wins ties (grid order)
                    tuned["choices"].setdefault(_size_text(size), {}).setdefault(task.name, {})[bm.name] = {
                        "chosen": best[0], "tune_psnr": round(best[1], 4),
                        "grid": [{"setting": s, "tune_psnr": round(v, 4)} for s, v in scores],
                    }
        atomic_write_text(out / "tuned.json", json.dumps(tuned, indent=2))
        # 2. test: the chosen settings, test clips read only now.
        for size in protocol.sizes:
            for task in protocol.tasks.values():
                for bm in protocol.methods.values():
                    if not protocol.runs_for(bm, task, size) or bm.budget_match is not None:
                        continue
                    setting = _chosen(tuned, size, task, bm)
                    bar.set_postfix_str(f"test {task.name} {bm.name}")
                    for c in protocol.test:
                        for s in protocol.seeds:
                            runner.run(size, c, task, bm, setting, s)
        # 3. equal budget: match the reference method's a_calls per problem.
        for size in protocol.sizes:
            for task in protocol.tasks.values():
                for bm in protocol.methods.values():
                    if bm.budget_match is None or not protocol.runs_for(bm, task, size):
                        continue
                    ref = protocol.methods[bm.budget_match]
                    if not protocol.runs_for(ref, task, size):
                        continue
                    ref_setting = _setting_text(_chosen(tuned, size, task, ref))
                    like = _chosen(tuned, size, task, protocol.methods[bm.budget_like]) if bm.budget_like else {}
                    for c in protocol.test:
                        for s in protocol.seeds:
                            ref_row = table.get((_size_text(size), c, task.name, ref.name, ref_setting, str(s)))
                            if ref_row is None:
                                continue
                            key_text = f"budget={ref.name}" + (f" {_setting_text(like)}" if like else "")
                            done = table.get((_size_text(size), c, task.name, bm.name, key_text, str(s)))
                            iters = 1 if done else runner.budget_iters(size, c, task, bm, like, s, int(ref_row["a_calls"]))
                            runner.run(size, c, task, bm, like, s, extra={"iters": iters}, setting_text=key_text)
    finally:
        bar.close()
    return {"runs": len(table.rows), **write_report(protocol, out, gt_warp=runner.gt_warp), "seconds": time.perf_counter() - t0}


def write_report(protocol: Protocol, out_dir: str | Path, *, gt_warp: dict | None = None) -> dict:
    """(Re)write ``summary.md`` and the plots from ``runs.csv`` and ``tuned.json`` in ``out_dir``
    without running anything (``vidrestore bench --report``); the ground truth's warping error is
    computed from the clips when not given."""
    out = Path(out_dir)
    if not (out / "runs.csv").exists() or not (out / "tuned.json").exists():
        raise UserError(f"{out} has no finished tuning (runs.csv and tuned.json); run the benchmark first")
    table = RunTable(out / "runs.csv", resume=True)
    tuned = json.loads((out / "tuned.json").read_text())
    rows = list(table.rows.values())
    if gt_warp is None:
        runner = _Runner(protocol, table, device=None, progress=lambda: None, log=lambda s: None)
        for size in protocol.sizes:
            for clip in protocol.test:
                if any(r["clip"] == clip and r["size"] == _size_text(size) for r in rows):
                    runner.flows(clip, size)
        gt_warp = runner.gt_warp
    atomic_write_text(out / "summary.md", summarize(protocol, rows, tuned, gt_warp=gt_warp))
    atomic_write_text(out / "gt_warp.json", json.dumps({f"{k[0]} {k[1]}": v for k, v in gt_warp.items()}, indent=2))
    plot_summary(protocol, rows, out)
    return {"summary": str(out / "summary.md"), "tuned": str(out / "tuned.json")}


def _chosen(tuned: dict, size, task: BenchTask, bm: BenchMethod) -> dict:
    return tuned["choices"].get(_size_text(size), {}).get(task.name, {}).get(bm.name, {}).get("chosen", {})


# ------------------------------------------------------------------------------ statistics

# Two-sided 95 % Student-t quantiles t_{0.975, df}.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
         25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile(df: int) -> float:
    """Two-sided 95 % Student-t quantile for ``df`` degrees of freedom (table, conservative)."""
    if df < 1:
        return float("nan")
    return _T975[max(k for k in _T975 if k <= df)]  # the next smaller df: a wider interval


def mean_ci(per_clip: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (Student t over the clip-level values; nan for one clip)."""
    n = len(per_clip)
    m = _mean(per_clip)
    if n < 2:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in per_clip) / (n - 1)
    return m, t_quantile(n - 1) * math.sqrt(var / n)


def _clip_means(rows: list[dict], col: str) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in rows:
        if r[col] not in ("", None):
            by.setdefault(r["clip"], []).append(float(r[col]))
    return {c: _mean(v) for c, v in by.items()}


def _pm(m: float, h: float, digits: int = 2) -> str:
    return f"{m:.{digits}f} ± {h:.{digits}f}" if math.isfinite(h) else f"{m:.{digits}f}"


def verdict(m: float, h: float) -> str:
    """Reading of a paired difference with its 95 % interval."""
    if not math.isfinite(h):
        return "one clip: no interval"
    if m - h > 0:
        return "better"
    if m + h < 0:
        return "worse"
    return "no clear difference"


def task_results(protocol: Protocol, rows: list[dict], size_text: str, task: str, tuned: dict) -> dict:
    """Test-split statistics of one task at one size: per method the mean (and interval) of
    PSNR/SSIM/E_warp/seconds/nfe/a_calls, the best classical method (chosen on the tune split)
    and each method's paired PSNR difference to it."""
    test_rows = [r for r in rows if r["size"] == size_text and r["task"] == task and r["split"] == "test"]
    out: dict = {"methods": {}, "best_classical": None}
    for name, bm in protocol.methods.items():
        chosen = None
        if bm.budget_match is None:
            chosen = _setting_text(tuned.get("choices", {}).get(size_text, {}).get(task, {}).get(name, {}).get("chosen", {}))
        mr = [r for r in test_rows if r["method"] == name and (chosen is None or r["setting"] == chosen)]
        if not mr:
            continue
        stats = {"n_runs": len(mr), "clips": sorted({r["clip"] for r in mr})}
        for col in ("psnr", "ssim", "warp_error", "seconds", "nfe", "a_calls"):
            cm = _clip_means(mr, col)
            if cm:
                stats[col] = mean_ci(list(cm.values()))
        stats["rows"] = mr
        out["methods"][name] = stats
    # best classical method: by tune-split mean PSNR (never by test results)
    tune_choice = tuned.get("choices", {}).get(size_text, {}).get(task, {})
    cands = [(v["tune_psnr"], k) for k, v in tune_choice.items() if k in protocol.methods and protocol.methods[k].classical and k in out["methods"]]
    if cands:
        best = max(cands)[1]
        out["best_classical"] = best
        for name, st in out["methods"].items():
            d = paired_diff(st["rows"], out["methods"][best]["rows"])
            if d is not None and name != best:
                st["diff"] = d
    return out


def paired_diff(rows: list[dict], ref_rows: list[dict], col: str = "psnr") -> tuple[float, float] | None:
    """Mean and 95 % half-width over clips of the paired difference ``rows - ref_rows`` in
    ``col`` (pairs: same clip and seed; seeds averaged within a clip); None without pairs."""
    ref = {(r["clip"], str(r["seed"])): float(r[col]) for r in ref_rows}
    diffs: dict[str, list[float]] = {}
    for r in rows:
        k = (r["clip"], str(r["seed"]))
        if k in ref:
            diffs.setdefault(r["clip"], []).append(float(r[col]) - ref[k])
    return mean_ci([_mean(v) for v in diffs.values()]) if diffs else None


def summarize(protocol: Protocol, rows: list[dict], tuned: dict, *, gt_warp: dict | None = None) -> str:
    """``summary.md``: test split only, one table per size and task (see the module docstring)."""
    gt_warp = gt_warp or {}
    lines = [
        "# vidrestore bench summary",
        "",
        f"Protocol: `{protocol.source}`. {protocol.description}".rstrip(),
        "",
        f"- Tuned on: {', '.join(protocol.tune)} (tune split; every grid point, {len(protocol.tuning_seeds)} seed(s): {', '.join(map(str, protocol.tuning_seeds))}).",
        f"- Reported on: {', '.join(protocol.test)} (test split, never used for a choice).",
        f"- Frames: {protocol.frames} per clip; sizes: {', '.join(_size_text(s) for s in protocol.sizes)}.",
        "- Mean ± 95 % interval: seeds averaged per clip, Student t over clips. "
        "Δ: paired PSNR difference to the best classical method of the task (chosen by tune-split PSNR).",
        "- E_warp: warping error (flows of the ground truth); the ground truth's own value is given per task. "
        "Lower is not better below it: that is over-smoothing.",
        "- nfe: network evaluations per frame; a_calls: applications of A plus Aᵀ.",
        "",
    ]
    verdicts = []
    for size in protocol.sizes:
        st = _size_text(size)
        lines.append(f"## {st}")
        lines.append("")
        for tname, task in protocol.tasks.items():
            res = task_results(protocol, rows, st, tname, tuned)
            if not res["methods"]:
                continue
            gts = [v for (s, c), v in gt_warp.items() if s == st and c in protocol.test]
            gtw = f"{_mean(gts):.3e}" if gts else "n/a"
            label = f" — {task.label}" if task.label else ""
            lines.append(f"<!-- bench-table {st} {tname} -->")
            lines.append(f"### {tname}: `{task.op}`, σ_y = {task.sigma_y:g}{label}")
            lines.append("")
            lines.append(f"Ground-truth E_warp {gtw}; best classical (tune split): {res['best_classical'] or 'n/a'}.")
            lines.append("")
            lines.append("| method | setting | PSNR | Δ PSNR vs best classical | SSIM | E_warp | s/run | nfe | a_calls |")
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for name, stt in res["methods"].items():
                bm = protocol.methods[name]
                setting = stt["rows"][0]["setting"] or "defaults"
                if bm.budget_match:
                    like = f", {bm.budget_like}'s setting" if bm.budget_like else ""
                    setting = f"iters matched to {bm.budget_match}{like}"
                d = stt.get("diff")
                dtext = "reference" if name == res["best_classical"] else (f"{_pm(*d)} ({verdict(*d)})" if d else "")
                if d and not bm.classical:
                    verdicts.append((st, tname, name, d))
                warp = stt.get("warp_error")
                expected = len(protocol.test) * len(protocol.seeds)
                if stt["n_runs"] < expected:
                    setting += f" (only {stt['n_runs']} of {expected} runs)"
                lines.append(
                    f"| {name} | {setting.replace('|', '/')} | {_pm(*stt['psnr'])} | {dtext} | {stt['ssim'][0]:.4f} | "
                    f"{warp[0]:.3e} | {stt['seconds'][0]:.1f} | {stt['nfe'][0]:.0f} | {stt['a_calls'][0]:.0f} |"
                    if warp else
                    f"| {name} | {setting} | {_pm(*stt['psnr'])} | {dtext} | {stt['ssim'][0]:.4f} | | {stt['seconds'][0]:.1f} | {stt['nfe'][0]:.0f} | {stt['a_calls'][0]:.0f} |"
                )
            lines.append("")
    if verdicts:
        lines.append("## Learned methods against the best classical method (test split)")
        lines.append("")
        lines.append("<!-- bench-verdicts -->")
        lines.append("| size | task | method | Δ PSNR (95 % interval) | reading |")
        lines.append("|---|---|---|---|---|")
        for st, tname, name, d in verdicts:
            lines.append(f"| {st} | {tname} | {name} | {_pm(*d)} | {verdict(*d)} |")
        lines.append("")
    return "\n".join(lines)


def plot_summary(protocol: Protocol, rows: list[dict], out: Path) -> list[Path]:
    """``psnr_SIZE.png``: test-split PSNR per task and method with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tuned = json.loads((out / "tuned.json").read_text()) if (out / "tuned.json").exists() else {"choices": {}}
    paths = []
    for size in protocol.sizes:
        st = _size_text(size)
        tasks = [t for t in protocol.tasks if task_results(protocol, rows, st, t, tuned)["methods"]]
        if not tasks:
            continue
        names = list(protocol.methods)
        results = {t: task_results(protocol, rows, st, t, tuned)["methods"] for t in tasks}
        widest = max(len(r) for r in results.values())
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * widest * len(tasks) + 2), 4))
        width = 0.8 / max(1, widest)
        colours = {name: f"C{j % 10}" for j, name in enumerate(names)}
        labelled = set()
        for i, t in enumerate(tasks):
            present = [n for n in names if n in results[t]]  # bars of one task side by side, centred
            for j, name in enumerate(present):
                m, h = results[t][name]["psnr"]
                ax.bar(i + (j - (len(present) - 1) / 2) * width, m, width, yerr=h if math.isfinite(h) else 0.0, capsize=2,
                       color=colours[name], label=None if name in labelled else name)
                labelled.add(name)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("PSNR (dB), test split")
        ax.set_title(f"vidrestore bench {st} (mean ± 95 % interval over clips)")
        lo = min(b.get_height() for b in ax.patches) if ax.patches else 0
        ax.set_ylim(max(0, lo - 3), None)
        ax.legend(fontsize=7, ncol=4)
        fig.tight_layout()
        path = out / f"psnr_{st}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        paths.append(path)
    return paths
