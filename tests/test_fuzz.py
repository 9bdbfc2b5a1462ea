"""Property-based fuzzing: ``ops.parse`` and ``read_video`` raise nothing but UserError.

``parse`` is fuzzed in a subprocess whose address space is capped a little above what the
interpreter already uses (``RLIMIT_AS``), so a spec that tried to allocate a large kernel
would fail the test with a MemoryError instead of swapping the machine.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidrestore.errors import UserError
from vidrestore.io import read_video, write_video

SRC = str(Path(__file__).resolve().parents[1] / "src")

PARSE_FUZZ = textwrap.dedent(
    r'''
    import resource, sys
    import numpy as np
    from hypothesis import given, settings, strategies as st
    from vidrestore.errors import UserError
    from vidrestore.ops import parse

    kdir = sys.argv[1]
    np.save(f"{kdir}/k.npy", np.ones((3, 3)))
    np.save(f"{kdir}/s.npy", np.array([["a"] * 3] * 3))
    np.savez(f"{kdir}/z.npz", a=np.ones((3, 3)))
    np.save(f"{kdir}/big.npy", np.ones((1027, 1)))
    open(f"{kdir}/junk.npy", "wb").write(b"\x93NUMPY junk")

    names = ["tblur", "blur", "sr", "inpaint", "fdrop", "id", "TBLUR", "Blur", "SR", "x", ""]
    words = ["uniform", "gauss", "gaussian", "motion", "kernel", "circular", "reflect", "replicate",
             "box", "bicubic", "shared", "perframe", "UNIFORM", "Gauss"]
    numbers = ["0", "1", "2", "3", "7", "-1", "0.5", "1e9", "1e308", "1e-320", "nan", "inf", "-inf",
               "100001", "10000000000", "2**70", str(2**70), "9" * 5000, "0x10", "1_0", "", " 3 "]
    paths = [f"{kdir}/{n}" for n in ("k.npy", "s.npy", "z.npz", "big.npy", "junk.npy", "missing.npy")] + [kdir, "\x00"]
    field = st.one_of(st.sampled_from(words), st.sampled_from(numbers), st.sampled_from(paths),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.integers(-2**80, 2**80).map(str), st.text(max_size=8))
    token = st.builds(lambda n, f: ":".join([n] + f), st.one_of(st.sampled_from(names), st.text(max_size=6)),
                      st.lists(field, max_size=4))
    spec = st.one_of(st.lists(token, min_size=1, max_size=3).map(",".join), st.text(max_size=30))
    seeds = st.one_of(st.integers(0, 10), st.integers(-2**80, 2**80))
    frames = st.one_of(st.none(), st.integers(1, 64))

    # Cap the address space at what is mapped now plus 1 GiB: a big allocation fails loudly.
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))

    bad = []

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None, derandomize=True)
    @given(spec, seeds, frames)
    def fuzz(s, seed, num_frames):
        try:
            parse(s, seed=seed, num_frames=num_frames)
        except UserError:
            pass
        except BaseException as e:  # noqa: BLE001
            bad.append(f"{s!r} seed={seed} frames={num_frames}: {type(e).__name__}: {e}"[:300])

    fuzz()
    print("\n".join(bad[:20]))
    sys.exit(1 if bad else 0)
    '''
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for the memory cap")
def test_parse_fuzz_only_user_error_under_memory_cap(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", PARSE_FUZZ, str(tmp_path), "2000"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]


@pytest.mark.parametrize("spec", ["SR:2", "Sr:2:BICUBIC", "TBLUR:Uniform:3:Reflect", "BLUR:GAUSS:1.5", "Inpaint:0.5:PerFrame", "FDROP:2", "ID"])
def test_parse_names_are_case_insensitive(spec):
    from vidrestore.ops import parse

    assert parse(spec).spec == parse(spec.lower()).spec


@pytest.mark.parametrize("spec", ["SR:0", "blur:gauss:nan", "blur:motion:5:-inf", "blur:gauss:1e9", "tblur:gauss:1e9", "blur:gauss:1:100001",
                                  "blur:motion:1e9:0", "tblur:uniform:10000000000", "blur:motion:20000:0", "inpaint:nan", "sr:inf"])
def test_parse_rejects_bad_values_with_user_error(spec):
    from vidrestore.ops import parse

    with pytest.raises(UserError, match="bad operator token"):
        parse(spec)


def test_parse_limits_temporal_support_to_the_clip():
    from vidrestore.ops import parse

    assert parse("tblur:uniform:7", num_frames=7).spec == "tblur:uniform:7:circular"
    with pytest.raises(UserError, match="needs at least 7 frames, the clip has 6"):
        parse("tblur:uniform:7", num_frames=6)


def test_parse_kernel_must_be_a_numeric_npy(tmp_path):
    from vidrestore.ops import parse

    np.savez(tmp_path / "k.npz", a=np.ones((3, 3)))
    np.save(tmp_path / "s.npy", np.array([["a"] * 3] * 3))
    for name in ("k.npz", "s.npy"):
        with pytest.raises(UserError, match="blur kernel"):
            parse(f"blur:kernel:{tmp_path / name}")


def test_parse_huge_inpaint_seed_is_user_error():
    from vidrestore.ops import parse

    with pytest.raises(UserError, match="seed"):
        parse("inpaint:0.5", seed=2**70)


def test_spatial_kernel_larger_than_frames_is_refused():
    from vidrestore.ops import parse

    op = parse("blur:gauss:20")  # 121x121 kernel
    with pytest.raises(UserError, match="larger than"):
        op.check_input((1, 3, 4, 16, 16))
    assert op.check_input((1, 3, 4, 32, 32)) == (1, 3, 4, 32, 32)


# --------------------------------------------------------------------------- video reader


def _seed_files(folder: Path) -> list[bytes]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((1, 3, 4, 16, 16), generator=g)
    out = []
    for name in ("a.mkv", "a.mp4", "a.npz", "a.npy", "a.gif"):
        write_video(folder / name, x, 10.0)
        out.append((name, (folder / name).read_bytes()))
    return out


@pytest.mark.filterwarnings("ignore::vidrestore.errors.VidrestoreWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_read_video_fuzz_only_user_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    seeds = _seed_files_cached(tmp_path_factory)
    name, blob = data.draw(st.sampled_from(seeds))
    mode = data.draw(st.sampled_from(["flip", "truncate", "random", "splice"]))
    b = bytearray(blob)
    if mode == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=20)):
            b[pos] = data.draw(st.integers(0, 255))
    elif mode == "truncate":
        b = b[: data.draw(st.integers(0, len(b)))]
    elif mode == "random":
        b = bytearray(data.draw(st.binary(max_size=2048)))
    else:
        at = data.draw(st.integers(0, len(b)))
        b = b[:at] + data.draw(st.binary(max_size=64)) + b[at:]
    path = folder / name
    path.write_bytes(bytes(b))
    try:
        video, fps = read_video(path, allow_truncated=True)
    except UserError:
        return
    assert video.ndim == 5 and video.shape[1] == 3 and fps > 0


_CACHE: dict = {}


def _seed_files_cached(factory):
    if "files" not in _CACHE:
        _CACHE["files"] = _seed_files(factory.mktemp("seeds"))
    return _CACHE["files"]
