"""Spatial tiling: tile placement, blending, tiled prior and PVDNet against whole frames, seams."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from vidrestore.cli.main import cli
from vidrestore.errors import UserError
from vidrestore.io import write_video
from vidrestore.tiling import ramp, resolve_tile, tile_starts, tiled_map


@pytest.mark.parametrize("size,tile,overlap", [(100, 32, 8), (64, 64, 8), (65, 64, 16), (720, 256, 32), (33, 16, 15)])
def test_tile_starts_cover_with_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == max(size - tile, 0)
    covered = torch.zeros(size, dtype=torch.bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap  # every neighbour pair shares at least `overlap` samples


def test_ramp_values():
    w = ramp(8, 4, 0, dtype=torch.float64)
    assert torch.allclose(w, torch.tensor([0.125, 0.375, 0.625, 0.875, 1, 1, 1, 1], dtype=torch.float64))
    assert torch.equal(ramp(5, 0, 0), torch.ones(5))


def test_tiled_map_is_exact_for_pointwise_functions():
    x = torch.rand(2, 3, 4, 70, 90, generator=torch.Generator().manual_seed(0))
    out = tiled_map(lambda c: c.square() + 1, x, 32, 8)
    assert torch.allclose(out, x.square() + 1, atol=1e-6)
    assert torch.equal(tiled_map(lambda c: c * 2, x, None), x * 2)  # no tiling
    assert torch.equal(tiled_map(lambda c: c * 2, x, 128), x * 2)  # one tile covers the frame


def test_tiled_map_local_error_shrinks_with_overlap():
    # A 7x7 blur with zero padding: tiles see zeros beyond their edge, so tiled != untiled near
    # interior tile edges; blending over a wider overlap hides more of it.
    x = torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    k = torch.ones(1, 1, 7, 7) / 49

    def blur(c):
        return F.conv2d(c, k, padding=3)

    ref = blur(x)
    errs = [(tiled_map(blur, x, 48, ov) - ref).abs().mean().item() for ov in (0, 16)]  # 0: hard seams
    assert errs[1] < 0.5 * errs[0]
    assert errs[1] < 0.01


def _seam_ratio(out, ref, cols):
    """Mean |horizontal difference| across the given column boundaries, tiled output over the
    untiled reference: about 1 without seams, well above 1 with a visible seam."""
    d_out = (out[..., cols] - out[..., [c - 1 for c in cols]]).abs().mean()
    d_ref = (ref[..., cols] - ref[..., [c - 1 for c in cols]]).abs().mean()
    return (d_out / d_ref).item()


def test_tiled_prior_has_no_seams():
    from vidrestore.priors import load_prior

    prior = load_prior("default")
    g = torch.Generator().manual_seed(0)
    # A smooth image plus noise at t = 200, denoised in one step (x0 estimate).
    base = F.interpolate(torch.rand(2, 3, 16, 16, generator=g), size=(128, 128), mode="bicubic").clamp(0, 1) * 2 - 1
    t = torch.full((2,), 200)
    abar = prior.alphas_cumprod[200]
    xt = abar.sqrt() * base + (1 - abar).sqrt() * torch.randn(base.shape, generator=g)
    with torch.no_grad():
        whole = prior.x0(xt, t)
        prior_t = __import__("copy").copy(prior)
        prior_t.tile, prior_t.tile_overlap = 64, 16
        tiled = prior_t.x0(xt, t)
        hard = prior.x0(xt, t)  # hard seams: 4 independent 64x64 tiles, no overlap
        for y0 in (0, 64):
            for x0 in (0, 64):
                hard[..., y0 : y0 + 64, x0 : x0 + 64] = prior.x0(xt[..., y0 : y0 + 64, x0 : x0 + 64], t)
    assert prior.tile is None  # the copy did not change the shared prior
    # Close to whole-frame denoising overall...
    psnr = 10 * torch.log10(4 / (tiled - whole).square().mean()).item()
    assert psnr > 25
    # ...and no seam where tiles meet (the blend zone 56..72), unlike hard tiles at column 64.
    assert _seam_ratio(tiled, whole, list(range(57, 72))) < 1.15
    assert _seam_ratio(hard, whole, [64]) > _seam_ratio(tiled, whole, [64])


@pytest.fixture
def clip96(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=(96, 96), mode="bicubic").clamp(0, 1)
    x = torch.stack([torch.roll(base, i, dims=3) for i in range(4)], 2)
    p = tmp_path / "clip.npz"
    write_video(p, x, 24.0)
    return p, x


def test_pvdnet_tiled_close_to_whole_frames(clip96):
    from vidrestore.workflows.methods import PVDNetOptions, get_method

    _, x = clip96
    m = get_method("pvdnet")
    state = m.setup(PVDNetOptions(), torch.device("cpu"))
    with torch.no_grad():
        whole = m.run(None, x, 0.0, PVDNetOptions(tile="off"), lambda i: None, state=state)
        tiled = m.run(None, x, 0.0, PVDNetOptions(tile=64, tile_overlap=24), lambda i: None, state=state)
    psnr = 10 * torch.log10(1 / (tiled - whole).square().mean()).item()
    assert psnr > 30
    assert _seam_ratio(tiled, whole, list(range(33, 56))) < 1.2


def test_pvdnet_tiled_stream_equals_in_memory_tiles(tmp_path, clip96):
    """restore -m pvdnet streams frames; with --tile every tile runs its own recurrence, which
    must give the same frames as tiling the in-memory clip."""
    from vidrestore.io import read_video
    from vidrestore.workflows.methods import PVDNetOptions, get_method

    src, x = clip96
    m = get_method("pvdnet")
    with torch.no_grad():
        ref = m.run(None, x, 0.0, PVDNetOptions(tile=64, tile_overlap=24), lambda i: None, state=m.setup(PVDNetOptions(), torch.device("cpu")))
    out = tmp_path / "o.npz"
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "-m", "pvdnet", "--tile", "64", "--tile-overlap", "24", "-q"])
    assert r.exit_code == 0, r.output
    assert torch.allclose(read_video(out)[0], ref, atol=1e-5)


def test_resolve_tile():
    assert resolve_tile("auto", 128, 128) is None
    assert resolve_tile("auto", 720, 1280) == 256
    assert resolve_tile("off", 720, 1280) is None and resolve_tile(0, 720, 1280) is None
    assert resolve_tile("128", 720, 1280) == 128
    for bad in ("big", 8):
        with pytest.raises(UserError):
            resolve_tile(bad, 64, 64)


@pytest.mark.parametrize("args,msg", [
    (["-m", "svi", "--tile", "huge"], "--tile must be"),
    (["-m", "svi", "--tile", "12"], "--tile must be at least 16"),
    (["-m", "svi", "--tile", "20"], "multiple of 8"),
    (["-m", "svi", "--tile", "32", "--tile-overlap", "32"], "--tile-overlap must be below"),
    (["-m", "diffir2vr", "--tile", "32"], "diffir2vr does not tile"),
])
def test_restore_tile_errors_are_one_line(tmp_path, clip96, args, msg):
    src, _ = clip96
    r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(tmp_path / "o.npz"), "--op", "blur:gauss:1.0", "--steps", "1", "-q", *args])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.npz").exists()


def test_restore_svi_tiled_runs_and_matches_untiled_closely(tmp_path, clip96):
    from vidrestore.io import read_video

    src, x = clip96
    outs = {}
    for tile in ("off", "64"):
        out = tmp_path / f"o{tile}.npz"
        r = CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "-m", "svi", "--op", "blur:gauss:1.0", "--steps", "3", "--tile", tile, "--tile-overlap", "16", "-q"])
        assert r.exit_code == 0, r.output
        outs[tile] = read_video(out)[0]
    psnr = 10 * torch.log10(1 / (outs["64"] - outs["off"]).square().mean()).item()
    assert psnr > 30
