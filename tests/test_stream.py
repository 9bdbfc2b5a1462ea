"""Streaming I/O and the streamed restore path: lazy reading, chunked atomic writing, audio,
windowed stitching with frames handed out as they are finished, --start/--frames/--crop/--resize."""

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.io import read_video, write_video
from vidrestore.io.stream import VideoWriter, iter_video, open_video, write_stream
from vidrestore.io.testsrc import write_test_clip
from vidrestore.ops import parse
from vidrestore.solvers.windows import WindowedProblem
from vidrestore.workflows import restore_file
from vidrestore.workflows.scale import restore_video


def _clip(T=12, H=20, W=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, 3, T, H, W), generator=g)


def _mp4(path, frames=30, h=32, w=48, fps=25, audio=True, rate=48000):
    """H.264 clip with a moving pattern and (optionally) a sine AAC track of the same duration."""
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = (np.stack([(xx * 5 + 3 * i) % 256, (yy * 7 + i) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8) for i in range(frames))
    return write_test_clip(path, pattern, fps, tone_rate=rate if audio else None, preset="ultrafast")


def _describe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate)
        n = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        audio = None
        if c.streams.audio:
            a = c.streams.audio[0]
            audio = sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate
    return n, fps, audio


PACKET = 1024 / 48000  # one AAC frame: the precision of packet-level audio cuts


# ------------------------------------------------------------------------------ I/O


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_array_round_trip_in_chunks_is_exact(tmp_path, suffix):
    x = _clip(T=11) * 1.4 - 0.2  # measurements may leave [0, 1]: stored unchanged
    out = tmp_path / f"v{suffix}"
    write_stream(out, (x[:, :, s : s + 4] for s in range(0, 11, 4)), 12.5, num_frames=11)
    back, fps = read_video(out)
    assert torch.equal(back, x)
    if suffix == ".npz":
        assert fps == 12.5
    src = open_video(out)
    assert src.shape == x.shape and torch.equal(src.load(), x)
    if suffix == ".npz":  # np.savez layout is memory-mapped, not loaded
        assert isinstance(src._frames.thwc, np.memmap)
    assert torch.equal(src.read([10, 0, 5]), x[:, :, [10, 0, 5]])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_png_folder_round_trip_is_exact(tmp_path):
    x = torch.round(_clip(T=7) * 255) / 255
    out = tmp_path / "frames"
    write_stream(out, (x[:, :, s : s + 3] for s in range(0, 7, 3)), 25.0)
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:05d}.png" for i in range(7)]
    assert torch.equal(read_video(out)[0], x)
    chunks = list(iter_video(out, chunk=3, start=2, frames=4))
    assert [c.shape[2] for c in chunks] == [3, 1]
    assert torch.equal(torch.cat(chunks, 2), x[:, :, 2:6])


def test_streamed_read_equals_read_video_in_any_order(tmp_path):
    src_path = _mp4(tmp_path / "a.mp4", frames=20, audio=False)
    kw = dict(start=3, frames=14, resize=(24, 40), crop=(16, 30))
    ref, fps = read_video(src_path, **kw)
    with open_video(src_path, **kw) as src:
        assert src.shape == ref.shape and src.fps == fps == 25.0 and not src.has_audio
        # Circular windows ask for the last frames first, then the first ones (decoder restart).
        assert torch.equal(src.read([12, 13, 0, 1, 2]), ref[:, :, [12, 13, 0, 1, 2]])
        assert torch.equal(src.read([2, 3, 4, 5]), ref[:, :, 2:6])
        assert torch.equal(src.load(), ref)


def test_mp4_writer_keeps_frame_rate_and_audio(tmp_path):
    src_path = _mp4(tmp_path / "a.mp4", frames=40)
    n_in, fps_in, audio_in = _describe(src_path)
    assert n_in == 40 and audio_in is not None
    with open_video(src_path) as src:
        write_stream(tmp_path / "o.mp4", src.chunks(6), src.fps, audio=src.audio())
    n, fps, audio = _describe(tmp_path / "o.mp4")
    assert (n, fps) == (40, 25.0)
    assert audio == pytest.approx(audio_in, abs=1e-9)  # packets copied: same samples
    # A selection of frames gets the audio of those frames (cut at packet boundaries).
    with open_video(src_path, start=10, frames=20) as src:
        write_stream(tmp_path / "t.mkv", src.chunks(6), src.fps, audio=src.audio())
    n, fps, audio = _describe(tmp_path / "t.mkv")
    assert (n, fps) == (20, 25.0)
    assert abs(audio - 20 / 25) <= PACKET
    # .avi does not take AAC as it is: the audio is re-encoded.
    with open_video(src_path) as src:
        write_stream(tmp_path / "o.avi", src.chunks(16), src.fps, audio=src.audio())
    n, _, audio = _describe(tmp_path / "o.avi")
    assert n == 40 and abs(audio - audio_in) <= 2 * PACKET


def test_writer_error_leaves_no_output(tmp_path):
    out = tmp_path / "o.mp4"
    write_video(out, _clip(T=3, H=16, W=16), 25.0)
    before = out.read_bytes()
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 25.0) as w:
            w.write(_clip(T=2, H=16, W=16))
            raise RuntimeError("solver failed")
    assert out.read_bytes() == before  # the previous output is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]


# ------------------------------------------------------------------------------ stitching


@pytest.mark.parametrize("spec", ["blur:gauss:1.0", "tblur:uniform:3:circular", "tblur:gauss:1.0:reflect"])
def test_streaming_stitch_equals_whole_stitch(spec):
    x = _clip(T=23)
    op = parse(spec)
    y = op.A(x)
    problem = WindowedProblem(op, y, window=11, overlap=2)
    assert len(problem) > 2

    def solve(op_w, y_w):
        return op_w.A_adjoint(y_w) * 0.7 + 0.1

    cores = [problem.solve_window(solve, k) for k in range(len(problem))]
    whole = problem.stitch(cores)
    got = []
    st = problem.stitcher(emit=got.append)
    for k, c in enumerate(cores):
        st.add(k, c)
    assert st.result() is None
    assert sum(c.shape[2] for c in got) == 23
    assert torch.equal(torch.cat(got, 2), whole)


# ------------------------------------------------------------------------------ restore


def test_streamed_cg_equals_whole_clip_cg(tmp_path):
    x = _clip(T=40)
    op = parse("tblur:gauss:1.0:reflect,blur:gauss:1.0")
    y = op.A(x)
    src = tmp_path / "y.npz"
    write_video(src, y, 25.0)
    # Windowed: streamed input and output equal the in-memory windowed solve.
    opts = {"iters": 6, "window": 12, "overlap": 3}
    restore_file(src, tmp_path / "w.npz", method="cg", op=op.spec, options=opts, quiet=True)
    ref = restore_video(y, op, method="cg", options=opts, quiet=True)
    assert torch.equal(read_video(tmp_path / "w.npz")[0], ref)
    # A clip within one window (the default, 16 frames) is solved whole, as before.
    short = tmp_path / "s.npz"
    write_video(short, y[:, :, :14], 25.0)
    restore_file(short, tmp_path / "s_out.npz", method="cg", op=op.spec, options={"iters": 6}, quiet=True)
    from vidrestore.solvers import solve_cg

    whole = solve_cg(op, y[:, :, :14], max_iter=6)
    assert torch.equal(read_video(tmp_path / "s_out.npz")[0], whole)


def test_restore_selection_flags(tmp_path):
    x = _clip(T=10, H=20, W=24)
    src = tmp_path / "in.npz"
    write_video(src, x, 25.0)
    out = tmp_path / "out.npz"
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "-m", "cg", "--op", "blur:gauss:1.0", "--iters", "4", "-q",
                                 "--start", "2", "--frames", "5", "--crop", "12x16"])
    assert r.exit_code == 0, r.output
    got = read_video(out)[0]
    assert got.shape == (1, 3, 5, 12, 16)
    sub = tmp_path / "sub.npz"
    write_video(sub, x[:, :, 2:7, 4:16, 4:20], 25.0)
    assert CliRunner().invoke(cli, ["restore", str(sub), "-o", str(tmp_path / "ref.npz"), "-m", "cg", "--op", "blur:gauss:1.0", "--iters", "4", "-q"]).exit_code == 0
    assert torch.equal(got, read_video(tmp_path / "ref.npz")[0])
    # --resize then --crop, and --key for a multi-array .npz.
    multi = tmp_path / "multi.npz"
    np.savez(multi, clean=x[0].numpy(), other=np.zeros((3, 2, 4, 4), np.float32))
    out2 = tmp_path / "r.npz"
    r = CliRunner().invoke(cli, ["restore", str(multi), "-o", str(out2), "-m", "cg", "--op", "id", "--iters", "1", "-q", "--key", "clean", "--resize", "10x12", "--crop", "8"])
    assert r.exit_code == 0, r.output
    ref, _ = read_video(multi, key="clean", resize=(10, 12), crop=8)
    assert torch.equal(read_video(out2)[0], ref)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--frames", "0"], "--frames"),
        (["--start", "-1"], "--start"),
        (["--start", "50"], "beyond the end"),
        (["--start", "4", "--frames", "9"], "has only 10 frames"),
        (["--crop", "99x99"], "larger than the frame"),
        (["--crop", "abc"], "--crop"),
        (["--resize", "0x5"], "--resize"),
        (["--key", "nope"], "no array 'nope'"),
    ],
)
def test_selection_errors_exit_2_without_output(tmp_path, args, needle):
    src = tmp_path / "in.npz"
    write_video(src, _clip(T=10), 25.0)
    out = tmp_path / "out.mp4"
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "-m", "cg", "--op", "id", "-q", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error:") and needle in lines[0], r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


def test_selection_refused_for_a_sidecar_inpainting_mask(tmp_path):
    src = tmp_path / "x.npz"
    write_video(src, _clip(T=6), 25.0)
    y = tmp_path / "y.npz"
    assert CliRunner().invoke(cli, ["degrade", str(src), "-o", str(y), "--op", "inpaint:0.3"]).exit_code == 0
    r = CliRunner().invoke(cli, ["restore", str(y), "-o", str(tmp_path / "o.npz"), "-q", "--crop", "8x8"])
    assert r.exit_code == 2 and "inpainting mask" in r.output
    assert not (tmp_path / "o.npz").exists()


def test_restore_mp4_keeps_audio_and_trims_it(tmp_path):
    src = _mp4(tmp_path / "a.mp4", frames=30)
    _, _, audio_in = _describe(src)
    out = tmp_path / "o.mp4"
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "-m", "cg", "--op", "blur:gauss:1.0", "--iters", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert _describe(out) == (30, 25.0, pytest.approx(audio_in, abs=1e-9))
    out2 = tmp_path / "t.mp4"
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out2), "-m", "cg", "--op", "blur:gauss:1.0", "--iters", "2", "-q", "--start", "5", "--frames", "15"])
    assert r.exit_code == 0, r.output
    n, fps, audio = _describe(out2)
    assert (n, fps) == (15, 25.0) and abs(audio - 15 / 25) <= PACKET
    # Formats without audio say that the audio is not kept.
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(tmp_path / "o.npz"), "-m", "cg", "--op", "id", "--iters", "1", "-q"])
    assert r.exit_code == 0 and "warning" in r.output and "audio" in r.output


def test_batch_selection(tmp_path):
    in_dir = tmp_path / "in"
    for i in range(2):
        write_video(in_dir / f"v{i}.npz", _clip(T=9, seed=i), 25.0)
    out_dir = tmp_path / "out"
    r = CliRunner().invoke(cli, ["batch", str(in_dir), str(out_dir), "--ext", ".npz", "-m", "cg", "--op", "blur:gauss:1.0", "--iters", "2", "-q", "--frames", "4", "--crop", "10x12"])
    assert r.exit_code == 0, r.output
    for i in range(2):
        assert read_video(out_dir / f"v{i}.npz")[0].shape == (1, 3, 4, 10, 12)


def test_pvdnet_streams_frame_by_frame_with_the_same_frames(tmp_path):
    from vidrestore.workflows.deblur import deblur_video_pvdnet, load_pvdnet

    src = _mp4(tmp_path / "b.mp4", frames=6, h=32, w=48, audio=False)
    opts = {"weights": "pvdnet-small", "flow": "zero"}
    restore_file(src, tmp_path / "o.npz", method="pvdnet", options=opts, quiet=True, select={"start": 1, "frames": 4})
    x, _ = read_video(src, start=1, frames=4)
    ref = deblur_video_pvdnet(x, load_pvdnet("pvdnet-small"), flow="zero")
    assert torch.equal(read_video(tmp_path / "o.npz")[0], ref)
