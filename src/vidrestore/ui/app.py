"""The Gradio app of ``vidrestore ui``: widgets and wiring only; every job is a call into
:mod:`vidrestore.workflows.ui`.

Jobs run in Gradio's queue, one at a time (the app's job endpoints share one concurrency
group of size 1); the browser follows each job's steps through a progress bar. Errors show
the CLI's one line (``vidrestore: error: ...``). The named endpoint ``restore`` takes
``(video file, operator spec, method)`` and returns the restored ``.mp4``.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from pathlib import Path

from ..errors import UserError, error_line
from ..workflows.jobs import parse_size
from ..workflows.progress import progress_listener
from ..workflows.ui import LGCVD_METHODS, METHOD_NOTES, TASK_PRESETS, UI_METHODS, bundled_clips, estimate_job, resolve_clip, restore_for_api, run_job

__all__ = ["build_app", "serve", "import_gradio"]

CUSTOM = "custom (type an operator spec)"
NO_SAMPLE = "(none: use the upload)"
DEGRADE = "clean: degrade it with the operator first, then restore (the clip is the ground truth)"
AS_IS = "degraded: restore it as it is"
#: Concurrency group of the job endpoints: one job at a time per app process.
JOBS = "vidrestore-jobs"


def import_gradio():
    """The ``gradio`` module, or a UserError saying how to install it."""
    import os

    # No usage statistics leave the machine unless the user asks for them.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError("the web app needs Gradio: pip install 'vidrestore[ui]'") from None
    return gradio


def _one_line(exc: BaseException) -> str:
    """The CLI's line for a user error; unexpected errors also get one line (and a traceback
    on the server's stderr)."""
    line = error_line(exc)
    if line is None:
        traceback.print_exception(exc, file=sys.stderr)
        text = str(exc).strip().splitlines()
        line = f"vidrestore: error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line


def _int(value) -> int | None:
    return None if value is None or value == "" else int(value)


def _job_inputs(upload, sample, mode, frames, resize):
    clip = resolve_clip(upload, None if sample in (None, "", NO_SAMPLE) else sample)
    simulate = mode == DEGRADE
    size = parse_size(resize.strip(), "resize") if isinstance(resize, str) and resize.strip() else None
    return clip, simulate, _int(frames), size


def build_app(job_root: str | Path | None = None):
    """The app as a ``gradio.Blocks`` (queue enabled, one job at a time). ``job_root``: folder
    of the job folders (default: a new temporary folder)."""
    gr = import_gradio()
    root = Path(job_root) if job_root is not None else Path(tempfile.mkdtemp(prefix="vidrestore-ui-"))
    root.mkdir(parents=True, exist_ok=True)

    def new_job() -> Path:
        return Path(tempfile.mkdtemp(prefix="job-", dir=root))

    def on_preset(preset):
        if preset in TASK_PRESETS:
            spec, sigma = TASK_PRESETS[preset]
            return spec, sigma
        return gr.update(), gr.update()

    def on_sample(sample):
        return DEGRADE if sample not in (None, "", NO_SAMPLE) else gr.update()

    def on_estimate(upload, sample, mode, frames, resize, op, sigma, method, steps, amount):
        try:
            clip, simulate, n, size = _job_inputs(upload, sample, mode, frames, resize)
            est = estimate_job(clip, method=method, op=op, sigma_y=sigma, simulate=simulate, frames=n, resize=size, steps=_int(steps), amount=_int(amount))
        except Exception as e:  # noqa: BLE001 - shown in place of the estimate while the user edits
            return f"Estimate: {_one_line(e)}"
        return f"Estimate: {est['text']}"

    def on_run(upload, sample, mode, frames, resize, op, sigma, method, steps, amount, seed, allow_ood, gt, progress=gr.Progress()):
        def listen(done, total, desc):
            progress((done, total), desc=desc, unit="steps")

        try:
            clip, simulate, n, size = _job_inputs(upload, sample, mode, frames, resize)
            with progress_listener(listen):
                r = run_job(clip, new_job(), method=method, op=op, sigma_y=sigma, simulate=simulate, frames=n, resize=size,
                            gt=gt or None, steps=_int(steps), amount=_int(amount), seed=_int(seed) or 0, allow_out_of_domain=bool(allow_ood))
        except Exception as e:  # noqa: BLE001 - every failure is one line in the browser
            raise gr.Error(_one_line(e), print_exception=False) from e
        return r["input_video"], r["output_video"], r["summary"], r["comparison"], r["psnr_plot"], r["output"]

    def api_restore(video, op, method):
        """Restore a measurement (video file) with an operator spec and a method; returns the restored .mp4."""
        try:
            if not video:
                raise UserError("no input video")
            return str(restore_for_api(video, op, method, new_job()))
        except Exception as e:  # noqa: BLE001
            raise gr.Error(_one_line(e), print_exception=False) from e

    samples = bundled_clips()
    first = next(iter(TASK_PRESETS))
    with gr.Blocks(title="vidrestore") as app:
        gr.Markdown("# vidrestore\nRestore a video clip: upload it (or pick a bundled one), say how it was degraded, choose a method.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Clip (video file, .npz or .npy)", type="filepath", elem_id="clip")
                sample = gr.Dropdown([NO_SAMPLE] + samples, value=NO_SAMPLE, label="or a bundled clip", elem_id="sample")
                mode = gr.Radio([AS_IS, DEGRADE], value=AS_IS, label="The clip is", elem_id="mode")
                with gr.Row():
                    frames = gr.Number(value=16, precision=0, minimum=1, label="Frames to use (when degrading)")
                    resize = gr.Textbox(value="", label="Resize to HxW (when degrading)", placeholder="e.g. 136x320")
                preset = gr.Dropdown(list(TASK_PRESETS) + [CUSTOM], value=first, label="Task preset", elem_id="preset")
                op = gr.Textbox(value=TASK_PRESETS[first][0], label="Operator spec", info="tokens applied left to right, e.g. tblur:uniform:7,sr:4 (grammar: vidrestore ops)", elem_id="op")
                sigma = gr.Number(value=TASK_PRESETS[first][1], minimum=0, maximum=1, label="Noise std sigma_y (0..1)")
                method = gr.Dropdown([(f"{m}: {METHOD_NOTES[m]}", m) for m in UI_METHODS], value="cg", label="Method", elem_id="method")
                with gr.Accordion("More options", open=False):
                    steps = gr.Number(value=None, precision=0, minimum=1, label="Iterations / steps (empty: the method's default)", elem_id="steps")
                    amount = gr.Number(value=None, precision=0, minimum=1, label=f"LGC-VD: {' / '.join(LGCVD_METHODS.values())} (empty: 14 / 7)")
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (operator and noise when degrading; sampling)")
                    allow_ood = gr.Checkbox(value=False, label="LGC-VD: run on clips unlike the model's training data")
                    gt = gr.File(label="Ground truth (optional, for per-frame PSNR when restoring as it is)", type="filepath")
                estimate = gr.Markdown("Estimate: upload a clip or pick a bundled one.", elem_id="estimate")
                run = gr.Button("Restore", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                with gr.Row():
                    video_in = gr.Video(label="Input", interactive=False, elem_id="video-in")
                    video_out = gr.Video(label="Restored", interactive=False, elem_id="video-out")
                summary = gr.Markdown(elem_id="summary")
                comparison = gr.Image(label="Middle frame: input | restored | ground truth", type="filepath", interactive=False)
                plot = gr.Image(label="PSNR per frame", type="filepath", interactive=False)
                download = gr.File(label="Download the restored video", interactive=False, elem_id="download")
        # The named API endpoint: (video file, operator spec, method) -> restored .mp4.
        api_out = gr.File(visible=False)
        api_button = gr.Button(visible=False)

        preset.change(on_preset, [preset], [op, sigma], api_visibility="private")
        op.input(lambda: CUSTOM, None, [preset], api_visibility="private")
        sample.change(on_sample, [sample], [mode], api_visibility="private")
        est_inputs = [upload, sample, mode, frames, resize, op, sigma, method, steps, amount]
        for comp in est_inputs:
            comp.change(on_estimate, est_inputs, [estimate], api_visibility="private", concurrency_id="estimate", concurrency_limit=None, trigger_mode="always_last")
        run.click(on_run, est_inputs + [seed, allow_ood, gt], [video_in, video_out, summary, comparison, plot, download],
                  api_name="restore_job", api_visibility="undocumented", concurrency_id=JOBS, concurrency_limit=1)
        api_button.click(api_restore, [upload, op, method], [api_out], api_name="restore", concurrency_id=JOBS, concurrency_limit=1)
    app.queue(default_concurrency_limit=1)
    app.vidrestore_job_root = root
    return app


def serve(host: str = "127.0.0.1", port: int = 7860, *, job_root: str | Path | None = None, block: bool = True):
    """Start the app at ``http://HOST:PORT`` (blocking unless ``block=False``; then returns the app)."""
    app = build_app(job_root)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, allowed_paths=[str(app.vidrestore_job_root)], show_error=True)
    return app
