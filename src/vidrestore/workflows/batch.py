"""Restore every measurement of a folder, resumably, on the local or the Ray backend.

``restore_batch(IN_DIR, OUT_DIR, method=...)`` restores each measurement file of ``IN_DIR``
(``.npz``/``.npy``/video files, each with the sidecar that ``vidrestore degrade`` wrote, or an
explicit ``op``) into ``OUT_DIR/<stem><ext>``. The windows of all videos go through one worker
pool (:func:`~vidrestore.workflows.scale.run_videos`), so on Ray short videos keep every
actor busy and the prior is loaded once per actor for the whole batch.

**Manifest.** ``OUT_DIR/manifest.json`` (rewritten atomically after every item) records the
batch configuration and, per input file name, ``status`` (``done`` or ``failed``), the output,
seconds, the configuration fingerprint, the content fingerprint of the input and its sidecar
(:func:`content_fingerprint`: size, mtime and a hash of the first and last MiB) and the error
message of a failure. A re-run skips the items that are ``done`` with the same configuration,
unchanged input and sidecar, and whose output exists; it retries the failed, missing and
changed ones, so an interrupted batch resumes where it stopped and an edited input is never
"already done". Outputs are written atomically: an interrupted item leaves no partial file.
A manifest that cannot be written (disk full, ...) stops the batch with one :class:`UserError`.

**Failures.** An item that cannot be read, whose window fails on every retry, or whose output
cannot be written is recorded as failed; the others go on. The summary lists the failures.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import UserError
from ..io import ARRAY_EXTENSIONS, VIDEO_EXTENSIONS, atomic_write_text, check_output, sidecar_path
from ..io.stream import VideoWriter
from .jobs import Selection, check_blind_flags, open_input, output_audio
from .methods import make_options
from .progress import progress
from .scale import make_spec, open_pool, plan_job, run_videos

MANIFEST = "manifest.json"
INPUT_EXTENSIONS = ARRAY_EXTENSIONS | VIDEO_EXTENSIONS
OUTPUT_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".gif", ".npy", ".npz"})


def find_inputs(in_dir: Path) -> list[Path]:
    """Measurement files of ``in_dir`` (not recursive; hidden files and sidecars skipped), sorted."""
    if not in_dir.is_dir():
        raise UserError(f"input folder {in_dir} does not exist or is not a folder")
    return sorted(p for p in in_dir.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in INPUT_EXTENSIONS)


def _fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def content_fingerprint(path: Path, chunk: int = 1 << 20) -> str | None:
    """Fingerprint of a file's content: size, mtime (ns) and BLAKE2b of its first and last
    ``chunk`` bytes (whole file when smaller); ``None`` when the file does not exist."""
    try:
        st = path.stat()
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            h.update(fh.read(chunk))
            if st.st_size > chunk:
                fh.seek(max(chunk, st.st_size - chunk))
                h.update(fh.read(chunk))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    return f"{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()}"


def _inputs_fingerprint(p: Path) -> dict:
    return {"input": content_fingerprint(p), "sidecar": content_fingerprint(sidecar_path(p))}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(out_dir: str | Path) -> dict:
    """The batch manifest of ``out_dir`` (an empty one when there is none)."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return {"items": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read the batch manifest {path}: {e}; delete it to start over") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), dict):
        raise UserError(f"{path} is not a vidrestore batch manifest; delete it to start over")
    return data


def restore_batch(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str = "cg",
    options: dict | None = None,
    op: str | None = None,
    sigma_y: float | None = None,
    seed: int | None = None,
    op_seed: int | None = None,
    ext: str = ".mp4",
    device: str | None = None,
    threads: int | None = None,
    backend: str = "local",
    ray: Any = None,
    quiet: bool = False,
    on_item: Callable[[str, str], None] | None = None,
    allow_truncated: bool = False,
    select: Selection | dict | None = None,
) -> dict:
    """Restore every measurement in ``in_dir`` into ``out_dir`` (see the module docstring).

    Args:
        in_dir: Folder of measurements (with sidecars unless ``op`` is given).
        out_dir: Output folder (created); must differ from ``in_dir``.
        method, options, device, threads: As for :func:`~vidrestore.workflows.restore_file`.
        op, sigma_y, op_seed: Override the sidecars' operator, noise level and operator seed.
        seed: Sampling seed of the diffusion methods (``options["seed"]``).
        ext: Output format suffix (``.mp4``, ``.mkv``, ``.npz``, ...).
        backend, ray: ``local`` or ``ray`` (with a
            :class:`~vidrestore.workflows.distributed.RayConfig`).
        quiet: No progress bar.
        allow_truncated: Accept truncated video inputs (warning) instead of failing them.
        select: The part of every input to restore (:class:`~vidrestore.workflows.jobs.Selection`:
            ``start``, ``frames``, ``crop``, ``resize``, ``key``).
        on_item: Called as ``on_item(name, status)`` (``done``/``failed``) after each item,
            once the manifest is updated.

    Returns:
        ``{"done": [...], "skipped": [...], "failed": {name: message}, "manifest": path,
        "seconds": s}``; names are input file names.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    ext = ext if ext.startswith(".") else "." + ext
    if ext.lower() not in OUTPUT_EXTENSIONS:
        raise UserError(f"--ext must be one of {', '.join(sorted(OUTPUT_EXTENSIONS))}, got {ext!r}")
    inputs = find_inputs(in_dir)
    if out_dir.exists() and out_dir.resolve() == in_dir.resolve():
        raise UserError("OUT_DIR must differ from IN_DIR (outputs would be read as inputs on a re-run)")
    stems: dict[str, str] = {}
    for p in inputs:
        if p.stem in stems:
            raise UserError(f"{stems[p.stem]} and {p.name} would both be written to {p.stem}{ext}")
        stems[p.stem] = p.name
    for p in inputs:
        check_output(out_dir / (p.stem + ext), [p])
    spec = make_spec(method, make_options(method, options, **({} if seed is None else {"seed": int(seed)})), device=device, threads=threads, backend=backend)
    check_blind_flags(method, op=op, sigma_y=sigma_y, op_seed=op_seed)
    sel = select if isinstance(select, Selection) else Selection(**(select or {}))
    config = {"method": method, "options": spec.options.to_dict(), "op": op, "sigma_y": sigma_y, "op_seed": op_seed, "ext": ext}
    if sel != Selection():
        config["select"] = {"start": sel.start, "frames": sel.frames, "crop": sel.crop, "resize": sel.resize, "key": sel.key}
    fp = _fingerprint(config)

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out_dir)
    manifest.update({"kind": "vidrestore-batch", "vidrestore_version": __version__, "input_dir": str(in_dir), "config": config, "fingerprint": fp})
    items: dict[str, dict] = manifest["items"]
    mpath = out_dir / MANIFEST

    def save() -> None:
        try:
            atomic_write_text(mpath, json.dumps(manifest, indent=2, sort_keys=True, default=str))
        except (UserError, OSError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise UserError(f"cannot save the batch manifest {mpath}: {why}") from None

    skipped, todo = [], []
    content: dict[str, dict] = {}
    for p in inputs:
        rec = items.get(p.name, {})
        out = out_dir / (p.stem + ext)
        content[p.name] = _inputs_fingerprint(p)
        if rec.get("status") == "done" and rec.get("fingerprint") == fp and rec.get("content") == content[p.name] and out.exists():
            skipped.append(p.name)
        else:
            todo.append(p)
    save()

    done: list[str] = []
    failed: dict[str, str] = {}
    started: dict[str, float] = {}
    t_batch = time.perf_counter()

    streams: dict[str, tuple] = {}  # name -> (source, writer) of the items in flight

    def loader(p: Path):
        def load():
            started[p.name] = time.perf_counter()
            source, operator, s_y, rate = open_input(p, method, op=op, sigma_y=sigma_y, op_seed=op_seed, allow_truncated=allow_truncated, select=sel)
            try:
                out = out_dir / (p.stem + ext)
                y = source if backend == "local" else source.load()  # Ray workers get the whole measurement
                job = plan_job(p.name, y, operator, s_y, spec)
                if step_bar is not None:
                    step_bar.grow(len(job.problem) * spec.options.num_steps())
                writer = VideoWriter(out, rate, num_frames=job.problem.num_frames, audio=output_audio(source, operator, out))
            except BaseException:
                source.close()
                raise
            streams[p.name] = (source, writer)
            job.sink = writer.write
            return job

        return load

    def release(name: str, exc: BaseException | None = None) -> None:
        source, writer = streams.pop(name, (None, None))
        try:
            if writer is not None:
                if exc is None:
                    writer.close()
                else:
                    writer.abort(exc)
        finally:
            if source is not None:
                source.close()

    local = backend == "local"
    with progress(len(todo), f"batch {method} ({backend})", quiet, unit="videos") as bar, \
            progress(0, f"  {method} steps (all videos)", quiet or not local) as step_bar:

        def finish(name: str, status: str, **rec) -> None:
            items[name] = {"status": status, "fingerprint": fp, "content": content.get(name), "finished": _now(), **rec}
            save()
            bar()
            if on_item is not None:
                on_item(name, status)

        def on_done(name: str, x) -> None:
            out = out_dir / (Path(name).stem + ext)
            writer = streams[name][1]
            c, h, w = writer.frame_shape
            shape = [1, c, writer.written, h, w]
            release(name)  # every frame is written: move the output into place
            done.append(name)
            finish(name, "done", output=out.name, seconds=round(time.perf_counter() - started.get(name, t_batch), 3), shape=shape)

        def on_failed(name: str, exc: BaseException) -> None:
            release(name, exc)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failed[name] = msg
            finish(name, "failed", error=msg)

        try:
            with open_pool(spec, backend, ray, step_callback=step_bar if local else None) as pool:
                run_videos([(p.name, loader(p)) for p in todo], pool, on_done=on_done, on_failed=on_failed)
        finally:
            for name in list(streams):  # interrupted: no partial outputs
                release(name, KeyboardInterrupt())

    return {"done": done, "skipped": skipped, "failed": failed, "manifest": str(mpath), "seconds": time.perf_counter() - t_batch}
