"""Inference engines and precision defaults for the prior's network on the CPU.

Two choices decide how fast a diffusion method runs on a CPU:

*Precision* (``fp32``, ``bf16``, ``fp16``): the dtype of the network's weights and activations.
``"auto"`` (the default) picks ``bf16`` on CPUs with native bfloat16 arithmetic (the
``avx512_bf16`` or ``amx_bf16`` CPU flags) and ``fp32`` elsewhere, because without those
instructions bfloat16 is emulated and slower than float32. On CUDA ``"auto"`` is ``fp32``.

*Engine* (``eager``, ``openvino``): who runs the forward pass. ``eager`` is plain PyTorch.
``openvino`` converts the network once to an OpenVINO model with dynamic batch and frame size
(Intel's OpenVINO runtime, ``pip install vidrestore[fast]``), stores it in the user cache folder
(:func:`cache_dir`, keyed by the weights, the precision and the OpenVINO version, so the second
run pays nothing) and runs it with the precision hint of ``precision``. ``"auto"`` is
``openvino`` on the CPU when the package is installed, else ``eager``. Calls that need gradients
with respect to the input (DPS) always run eagerly.

Environment variables ``VIDRESTORE_PRECISION`` and ``VIDRESTORE_ENGINE`` replace ``"auto"``
(for example ``VIDRESTORE_PRECISION=fp32`` on a machine where bf16 is not wanted), and
``VIDRESTORE_CACHE`` moves the cache folder.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
import numpy as np
import torch
from torch import nn

from ..errors import UserError

__all__ = ["PRECISION_NAMES", "ENGINES", "cpu_has_bf16", "resolve_precision", "resolve_engine", "cache_dir",
           "OpenVINONet", "openvino_available"]

PRECISION_NAMES = ("fp32", "bf16", "fp16")
ENGINES = ("eager", "openvino")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in
    ``/proc/cpuinfo``; ``False`` where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def _device_type(device) -> str:
    return torch.device(device).type if device is not None else "cpu"


def _choice(value: str | None, env: str, names: tuple[str, ...], what: str) -> str:
    """``value``, or ``$env`` when ``value`` is ``None``/``"auto"``; ``"auto"`` when neither
    names a choice; UserError for a name outside ``names``."""
    name = value or "auto"
    if name == "auto":
        name = os.environ.get(env) or "auto"
    if name != "auto" and name not in names:
        raise UserError(f"{what} must be one of auto, {', '.join(names)}, got {name!r}")
    return name


def resolve_precision(precision: str | None, device=None) -> str:
    """The precision name for ``precision`` (``None``/``"auto"``: ``$VIDRESTORE_PRECISION`` if
    set, else ``bf16`` on a CPU with native bfloat16, else ``fp32``)."""
    name = _choice(precision, "VIDRESTORE_PRECISION", PRECISION_NAMES, "precision")
    if name == "auto":
        return "bf16" if _device_type(device) == "cpu" and cpu_has_bf16() else "fp32"
    return name


def import_openvino():
    """Import ``openvino`` with its usage telemetry off (unless ``VIDRESTORE_OPENVINO_TELEMETRY=1``).

    OpenVINO's model conversion sends usage statistics through the optional
    ``openvino_telemetry`` package, from a process it forks. Offline, that process can wait on
    the network, and Python's exit then waits for it: a run that has finished hangs. Marking
    ``openvino_telemetry`` as absent before OpenVINO is first imported makes OpenVINO use its
    built-in no-op stub instead (the path it takes when the package is not installed). When
    the caller imported OpenVINO first, its import-time event has already gone to the real
    telemetry; the converter modules are then pointed at the stub, so at least the conversion
    sends nothing more.
    """
    off = os.environ.get("VIDRESTORE_OPENVINO_TELEMETRY") != "1"
    if off and "openvino_telemetry" not in sys.modules:
        for name in ("openvino_telemetry", "openvino_telemetry.backend"):
            sys.modules.setdefault(name, None)
    import openvino

    real = sys.modules.get("openvino_telemetry")
    if off and real is not None:
        # OpenVINO was imported before (by the caller): point its converter's modules at the stub.
        try:
            import openvino.tools.ovc.telemetry_stub as stub
        except ImportError:
            return openvino
        for name, mod in list(sys.modules.items()):
            if name.startswith("openvino.tools.ovc") and getattr(mod, "tm", None) is real:
                mod.tm = stub
    return openvino


def openvino_available() -> bool:
    """Whether the optional ``openvino`` package can be imported."""
    try:
        import_openvino()
    except Exception:
        return False
    return True


def resolve_engine(engine: str | None, device=None) -> str:
    """The engine name for ``engine`` (``None``/``"auto"``: ``$VIDRESTORE_ENGINE`` if set, else
    ``openvino`` on the CPU when installed, else ``eager``); :class:`UserError` when OpenVINO is
    asked for but missing or the device is not the CPU."""
    name = _choice(engine, "VIDRESTORE_ENGINE", ENGINES, "engine")
    if name == "auto":
        return "openvino" if _device_type(device) == "cpu" and openvino_available() else "eager"
    if name == "openvino":
        if _device_type(device) != "cpu":
            raise UserError("--engine openvino runs on the CPU only; use --engine eager with --device cuda")
        if not openvino_available():
            raise UserError("--engine openvino needs the openvino package: pip install 'vidrestore[fast]'")
    return name


def cache_dir() -> Path:
    """The user cache folder: ``$VIDRESTORE_CACHE``, else ``$XDG_CACHE_HOME/vidrestore``, else
    ``~/.cache/vidrestore``."""
    if os.environ.get("VIDRESTORE_CACHE"):
        return Path(os.environ["VIDRESTORE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidrestore"


def _weights_key(net: nn.Module, extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class OpenVINONet:
    """``net(x, t)`` run by OpenVINO on the CPU: a callable returning a float32 tensor.

    The network is converted once with dynamic batch, height and width (example input: one
    ``in_channels x 64 x 64`` frame) and the converted model is kept in
    ``cache_dir()/openvino/<key>/`` (``key`` hashes the weights, the OpenVINO version and the
    input channels), so later processes only read and compile it (under a second). The
    precision hint is ``bf16`` or ``f32`` (``fp16`` runs as ``f32`` on CPUs without native
    fp16). Threads follow ``torch.get_num_threads()`` at construction.

    Args:
        net: A float32 module with forward ``net(x, t)`` (``x``: ``(N, C, H, W)``, ``t``: ``(N,)`` int64).
        precision: ``"fp32"`` or ``"bf16"`` (``"fp16"`` is treated as ``"fp32"``).
        in_channels: Input channels of ``net``.
        example_size: Side of the example frame used for the conversion (a multiple of the
            network's down-sampling factor).
        folder: Cache folder (default :func:`cache_dir`).
    """

    def __init__(self, net: nn.Module, precision: str = "fp32", *, in_channels: int = 3, example_size: int = 64,
                 folder: str | os.PathLike | None = None) -> None:
        ov = import_openvino()

        self.precision = "bf16" if precision == "bf16" else "fp32"
        root = Path(folder) if folder is not None else cache_dir()
        key = _weights_key(net, f"{ov.__version__}|{in_channels}|{example_size}")
        model_dir = root / "openvino" / key
        xml = model_dir / "model.xml"
        if not xml.is_file():
            self._convert(net, in_channels, example_size, model_dir)
        core = ov.Core()
        threads = max(1, torch.get_num_threads())
        hint = "bf16" if self.precision == "bf16" else "f32"
        self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)})
        self.request = self.compiled.create_infer_request()
        self.model_dir = model_dir

    @staticmethod
    def _convert(net: nn.Module, in_channels: int, example_size: int, model_dir: Path) -> None:
        ov = import_openvino()

        print(f"vidrestore: converting the prior for OpenVINO (once per prior; cached in {model_dir.parent})",
              file=sys.stderr, flush=True)
        net = copy.deepcopy(net).float().eval()
        x = torch.zeros(1, in_channels, example_size, example_size)
        t = torch.zeros(1, dtype=torch.long)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about constants (shapes, head width)
            model = ov.convert_model(net, example_input=(x, t),
                                     input=[ov.PartialShape([-1, in_channels, -1, -1]), ov.PartialShape([-1])])
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir.parent))
        try:
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "source.json").write_text(json.dumps({"class": type(net).__name__, "openvino": ov.__version__}))
            try:
                tmp.rename(model_dir)
            except OSError:  # another process finished first: keep theirs
                if not (model_dir / "model.xml").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        xs = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy())
        ts = np.ascontiguousarray(t.detach().to(torch.long).cpu().reshape(-1).numpy())
        if ts.shape[0] == 1 and xs.shape[0] > 1:
            ts = np.repeat(ts, xs.shape[0])
        self.request.infer({0: xs, 1: ts})
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())
