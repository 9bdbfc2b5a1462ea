"""Tests for the DiffIR2VR-Zero wrapper (vidrestore.consistency) and flow_pair."""

from __future__ import annotations

import math

import pytest
import torch

from vidrestore.consistency import (
    DiffIR2VRConfig,
    FrameGroup,
    LatentWarper,
    TokenMerger,
    WarpLink,
    build_plan,
    cosine_match,
    frame_batches,
    merge_ratio,
    pick_keyframes,
    solve_diffir2vr,
    token_merging,
)
from vidrestore.consistency.tome import identity_plan
from vidrestore.errors import UserError
from vidrestore.flow import flow_pair, warp
from vidrestore.nets.adm_unet import ADMUNet
from vidrestore.ops import measure, parse
from vidrestore.solvers import solve_dds, solve_dps


# Many small network calls: on a busy 2-core machine two torch threads contend badly.
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def texture(h: int, w: int, dx: float = 0.0, dy: float = 0.0, *, seed: int = 0) -> torch.Tensor:
    """Smooth texture ``T(x + dx, y + dy)``, ``(1, 3, h, w)`` in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    xs, ys = xs + dx, ys + dy
    out = torch.zeros(3, h, w, dtype=torch.float64)
    for ch in range(3):
        for _ in range(24):
            u, v = (torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 0.12
            ph = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * math.pi
            out[ch] += torch.sin(2 * math.pi * (u * xs + v * ys) + ph)
    return (0.5 + 0.4 * out / 8.0).clamp(0.1, 0.9).float()[None]


# ------------------------------------------------------------------------------------------
# Flow interface.
# ------------------------------------------------------------------------------------------


def test_flow_pair_known_translation_and_warp():
    # frame_a(p) = T(p + d) and frame_b(p) = T(p): the flow of a into b is d everywhere.
    d = (3.0, -2.0)
    a, b = texture(64, 80, *d), texture(64, 80)
    fp = flow_pair(a, b)
    m = 12
    inner = fp.flow[0, :, m:-m, m:-m]
    assert abs(float(inner[0].median()) - d[0]) < 0.25
    assert abs(float(inner[1].median()) - d[1]) < 0.25
    # Warping b with the flow reproduces a in the interior, and the check passes there.
    err = (warp(b, fp.flow) - a)[..., m:-m, m:-m].abs().mean()
    assert float(err) < 0.01
    assert float(fp.mask[..., m:-m, m:-m].mean()) > 0.97
    assert float(fp.confidence[..., m:-m, m:-m].mean()) > 0.6
    # Pixels whose match leaves frame b (right border for dx = 3) are invalid.
    assert float(fp.mask[..., :, -2:].mean()) == 0.0
    assert float(fp.confidence[..., :, -2:].max()) == 0.0


def test_flow_pair_synthetic_occluder():
    # A textured square moves 8 px right over a static textured background. Background
    # pixels of frame a that the square covers in frame b are occluded; the rest is visible.
    bg = texture(64, 64, seed=1)
    sq = texture(64, 64, seed=2)
    s, y0, x0, dx = 20, 22, 14, 8
    a, b = bg.clone(), bg.clone()
    a[..., y0 : y0 + s, x0 : x0 + s] = sq[..., y0 : y0 + s, x0 : x0 + s]
    b[..., y0 : y0 + s, x0 + dx : x0 + dx + s] = sq[..., y0 : y0 + s, x0 : x0 + s]

    # Exact flows through the pluggable estimator interface (a learned net would plug in here).
    fw = torch.zeros(1, 2, 64, 64)
    fw[:, 0, y0 : y0 + s, x0 : x0 + s] = dx  # a's square is dx to the right in b
    bw = torch.zeros(1, 2, 64, 64)
    bw[:, 0, y0 : y0 + s, x0 + dx : x0 + dx + s] = -dx

    def oracle(target, source):
        return fw.clone() if target is a else bw.clone()

    fp = flow_pair(a, b, method=oracle)
    covered = fp.mask[0, 0, y0 + 2 : y0 + s - 2, x0 + s + 1 : x0 + s + dx - 1]  # background hidden in b
    assert float(covered.max()) == 0.0
    assert float(fp.mask[0, 0, :, :10].min()) == 1.0 and float(fp.mask[0, 0, y0 + 2 : y0 + s - 2, x0 + 2 : x0 + s - 2].min()) == 1.0
    assert float(fp.confidence[0, 0, y0 + 2 : y0 + s - 2, x0 + s + 1 : x0 + s + dx - 1].max()) < 1e-3



# ------------------------------------------------------------------------------------------
# Merge plans.
# ------------------------------------------------------------------------------------------


def _random_plan(F=4, L=12, key=2, ratio=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    src_frames = [f for f in range(F) if f != key]
    src_pos = torch.cat([f * L + torch.arange(L) for f in src_frames])
    dst = torch.randint(L, (src_pos.numel(),), generator=g)
    score = torch.rand(src_pos.numel(), generator=g)
    return build_plan(F, L, key, src_pos, dst, score, int(ratio * src_pos.numel())), src_pos, dst, score


def test_merge_unmerge_ratio_zero_is_identity():
    plan, *_ = _random_plan(ratio=0.0)
    x = torch.randn(48, 5)
    assert plan.num_merged == 0 and plan.keep.numel() == 48
    assert torch.equal(plan.unmerge(plan.merge(x)), x)
    assert torch.equal(identity_plan(48).unmerge(identity_plan(48).merge(x)), x)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.9, 1.0])
def test_merge_reduces_tokens_and_replaces(ratio):
    F, L, key = 4, 12, 2
    plan, src_pos, dst, score = _random_plan(F, L, key, ratio)
    S = src_pos.numel()
    r = int(ratio * S)
    assert plan.num_merged == r and plan.keep.numel() == F * L - r
    x = torch.randn(F * L, 3)
    y = plan.unmerge(plan.merge(x))
    merged = torch.sort(score, descending=True, stable=True).indices[:r]
    merged_set = set(src_pos[merged].tolist())
    for n, p in enumerate(src_pos.tolist()):
        if p in merged_set:  # merged src token gets its dst's value ("replace")
            assert torch.equal(y[p], x[key * L + dst[n]])
        else:
            assert torch.equal(y[p], x[p])
    keyrows = torch.arange(key * L, (key + 1) * L)
    assert torch.equal(y[keyrows], x[keyrows])  # dst tokens are never merged


def test_cosine_match_chunking_and_spatial_weight():
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randn(50, 8, generator=g), torch.randn(20, 8, generator=g)
    sxy, dxy = torch.rand(50, 2, generator=g) * 5, torch.rand(20, 2, generator=g) * 5
    i1, s1 = cosine_match(src, dst, sxy, dxy, 2.0, chunk=7)
    i2, s2 = cosine_match(src, dst, sxy, dxy, 2.0, chunk=1000)
    assert torch.equal(i1, i2) and torch.allclose(s1, s2)
    # Exact copies at the same place match themselves with score 1.
    i, s = cosine_match(dst, dst, dxy, dxy, 1.0, chunk=3)
    assert torch.equal(i, torch.arange(20)) and torch.allclose(s, torch.ones(20))


# ------------------------------------------------------------------------------------------
# Attention patching (ADM and diffusers).
# ------------------------------------------------------------------------------------------


def _adm(seed=0):
    torch.manual_seed(seed)
    net = ADMUNet(image_size=16, model_channels=32, num_res_blocks=1, attention_resolutions=(1, 2),
                  channel_mult=(1, 2), num_head_channels=16)
    for m in net.modules():  # zero-initialised output convs would hide the attention
        if hasattr(m, "proj_out"):
            torch.nn.init.normal_(m.proj_out.weight, std=0.2)
    torch.nn.init.normal_(net.out[2].weight, std=0.1)
    return net.eval()


def test_adm_patch_identity_cases_and_restore():
    net = _adm()
    x = torch.randn(6, 3, 16, 16)
    t = torch.full((6,), 300)
    with torch.no_grad():
        ref = net(x, t)
        # Groups of one frame: plain per-frame attention.
        m1 = TokenMerger([FrameGroup([i], 0) for i in range(6)], 6)
        with token_merging(net, m1):
            m1.set_ratio(0.9)
            out1 = net(x, t)
        assert torch.allclose(out1, ref, atol=1e-5)
        # Identical frames: joint attention over copies (ratio 0) equals per-frame attention, and
        # with every src merged (ratio 1) each token is the copy of its keyframe twin (cosine 1
        # at the same position). In between, key multiplicities change the softmax slightly.
        xs = x[:1].repeat(6, 1, 1, 1)
        ref_s = net(xs, t)
        m2 = TokenMerger([FrameGroup(list(range(6)), 3)], 6, down_match="cos", levels=2)
        with token_merging(net, m2):
            for r in (0.0, 1.0):
                m2.set_ratio(r)
                assert torch.allclose(net(xs, t), ref_s, atol=1e-4)
        assert m2.stats["merged_calls"] > 0 and m2.stats["kept"] < m2.stats["tokens"]
        # Different frames: merging changes the output; after the block the net is restored.
        with token_merging(net, m2):
            m2.set_ratio(0.9)
            out2 = net(x, t)
        assert (out2 - ref).abs().max() > 1e-3
        assert torch.equal(net(x, t), ref)
        assert all(type(b.attention).__name__ == "QKVAttention" for b in net.attention_blocks())


def test_adm_patch_levels_and_flow_correspondence():
    net = _adm(1)
    x = torch.randn(4, 3, 16, 16)
    t = torch.full((4,), 100)
    flows = torch.zeros(4, 2, 16, 16)
    conf = torch.rand(4, 1, 16, 16)
    m = TokenMerger([FrameGroup([0, 1, 2, 3], 1, flows, conf)], 4, levels=1)
    with torch.no_grad(), token_merging(net, m):
        m.set_ratio(0.5)
        net(x, t)
    # levels=1: only the finest attention level (16x16 tokens) is merged.
    assert m.ds_min == 1.0
    assert m.stats["tokens"] % (4 * 256) == 0
    # Flow correspondence with zero flow maps a token to the same position in the keyframe.
    src_pos, dst_tok, score = m._flow_tokens(0, 16, 16, torch.device("cpu"))
    assert torch.equal(dst_tok, src_pos % 256)


def test_token_merging_chunk_mismatch_raises():
    net = _adm()
    m = TokenMerger([FrameGroup([0, 1], 0)], 2)
    with token_merging(net, m):
        m.set_ratio(0.5)
        with pytest.raises(UserError):
            net(torch.randn(3, 3, 16, 16), torch.full((3,), 10))


def test_diffusers_processor_patch():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        norm_num_groups=4, attention_head_dim=8,
    ).eval()
    x = torch.randn(5, 3, 16, 16)
    t = torch.full((5,), 200)
    def processors():
        return {n: type(m.processor) for n, m in unet.named_modules() if hasattr(m, "set_processor")}

    procs = processors()
    assert procs
    with torch.no_grad():
        ref = unet(x, t).sample
        xs = x[:1].repeat(5, 1, 1, 1)
        ref_s = unet(xs, t).sample
        m = TokenMerger([FrameGroup(list(range(5)), 2)], 5, down_match="cos")
        with token_merging(unet, m):
            m.set_ratio(1.0)
            assert torch.allclose(unet(xs, t).sample, ref_s, atol=1e-4)
            m.set_ratio(0.9)
            out = unet(x, t).sample
        assert m.stats["merged_calls"] >= 2 and m.stats["kept"] < m.stats["tokens"]
        assert (out - ref).abs().max() > 1e-4
        assert processors() == procs
        assert torch.equal(unet(x, t).sample, ref)


# ------------------------------------------------------------------------------------------
# Schedule, batches, warping.
# ------------------------------------------------------------------------------------------


def test_schedule_and_batches():
    rs = [merge_ratio(i, 20) for i in range(20)]
    assert rs[0] == pytest.approx(0.9) and all(a > b for a, b in zip(rs, rs[1:])) and rs[-1] < 0.1
    assert merge_ratio(3, 10, (0.6, 0.0), (0.5, 1.0)) is None
    assert merge_ratio(5, 10, (0.6, 0.0), (0.5, 1.0)) == pytest.approx(0.6)
    assert [len(b) for b in frame_batches(16, 10)] == [10, 6]
    assert [len(b) for b in frame_batches(12, 10)] == [12]
    assert frame_batches(3, 10) == [[0, 1, 2]]
    assert pick_keyframes(frame_batches(16, 10)) == [5, 3]
    rk = pick_keyframes(frame_batches(30, 10), "random", seed=3)
    assert rk == pick_keyframes(frame_batches(30, 10), "random", seed=3) and all(0 <= k < 10 for k in rk)


def test_latent_warper_copies_keyframe_in_visible_regions():
    # Frame 0 is the keyframe shifted by 2 px; frame 1 is unrelated; a mask hides a band.
    T, H, W = 3, 16, 20
    x0 = torch.randn(1, 3, T, H + 8, W + 4)  # padded grid (bottom/right)
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = 2.0
    mask = torch.ones(1, 1, H, W)
    mask[..., :, :5] = 0
    links = [WarpLink(0, 0, 2, flow, mask), WarpLink(0, 1, 2, torch.zeros(1, 2, H, W), torch.ones(1, 1, H, W))]
    hook = LatentWarper(links, (0.0, 0.5), "nearest")
    out = hook(dict(i=0, num_steps=4, x0=x0))
    key = x0[0, :, 2, :H, :W]
    assert torch.equal(out[0, :, 0, :H, 5 : W - 2], key[:, :, 7:])
    assert torch.equal(out[0, :, 0, :H, :5], x0[0, :, 0, :H, :5])  # occluded: own estimate
    assert torch.equal(out[0, :, 1, :H, :W], key)
    assert torch.equal(out[..., H:, :], x0[..., H:, :])  # padding untouched
    assert torch.equal(out[:, :, 2], x0[:, :, 2])
    assert hook(dict(i=2, num_steps=4, x0=x0)) is x0  # outside the period


def test_latent_warper_strength_blends():
    T, H, W = 2, 8, 8
    x0 = torch.randn(1, 3, T, H, W)
    mask = torch.ones(1, 1, H, W)
    mask[..., :, :3] = 0
    links = [WarpLink(0, 0, 1, torch.zeros(1, 2, H, W), mask)]
    full = LatentWarper(links, (0.0, 1.0), "bilinear")(dict(i=0, num_steps=2, x0=x0))
    half = LatentWarper(links, (0.0, 1.0), "bilinear", strength=0.5)(dict(i=0, num_steps=2, x0=x0))
    assert torch.allclose(full[0, :, 0, :, 3:], x0[0, :, 1, :, 3:], atol=1e-6)  # replace (paper)
    assert torch.allclose(half[0, :, 0, :, 3:], 0.5 * (x0[0, :, 0, :, 3:] + x0[0, :, 1, :, 3:]), atol=1e-6)
    assert torch.equal(half[0, :, 0, :, :3], x0[0, :, 0, :, :3])  # occluded: own estimate
    assert torch.equal(LatentWarper(links, (0.0, 1.0), "bilinear", strength=0.0)(dict(i=0, num_steps=2, x0=x0)), x0)


def test_config_defaults_and_paper_settings():
    from vidrestore.consistency import PAPER_SETTINGS
    from vidrestore.workflows.jobs import parse_warp_period

    ours, paper = DiffIR2VRConfig(), DiffIR2VRConfig.paper()
    assert (ours.batch_size, ours.warp_period, ours.warp_mode, ours.warp_strength) == (5, (0.5, 1.0), "bilinear", 0.1)
    assert (paper.batch_size, paper.warp_period, paper.warp_mode, paper.warp_strength) == (10, (0.0, 0.1), "nearest", 1.0)
    assert all(getattr(paper, k) == v for k, v in PAPER_SETTINGS.items())
    assert paper.merge_ratio == ours.merge_ratio == (0.9, 0.0) and DiffIR2VRConfig.paper(batch_size=4).batch_size == 4
    assert parse_warp_period("0.1") == (0.0, 0.1) and parse_warp_period("0.5:1") == (0.5, 1.0)
    for bad in ("x", "0.6:0.2", "1.5", "0:0.5:1"):
        with pytest.raises(UserError):
            parse_warp_period(bad)
    with pytest.raises(UserError):
        DiffIR2VRConfig(warp_strength=1.5).validate()


# ------------------------------------------------------------------------------------------
# The wrapper end to end (bundled prior, tiny sizes).
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior():
    from vidrestore.priors import load_prior

    return load_prior("default")


def _clip(T=6, H=16, W=24):
    frames = [texture(H, W, dx=0.5 * t, seed=3) for t in range(T)]
    return torch.stack(frames, 2)


def test_wrapper_disabled_is_bit_identical(prior):
    x = _clip()
    op = parse("sr:2")
    y = measure(op, x)
    kw = dict(steps=3, eta=0.8, cg_steps=3, t_start=300, seed=1)
    base = solve_dds(prior, op, y, **kw)
    assert torch.equal(solve_diffir2vr(prior, op, y, config=DiffIR2VRConfig(enabled=False), **kw), base)
    assert torch.equal(solve_diffir2vr(prior, op, y, config=DiffIR2VRConfig(warp=False, merge=False), **kw), base)
    # The solver hook itself is exact: an identity hook changes nothing.
    assert torch.equal(solve_dds(prior, op, y, x0_hook=lambda info: info["x0"], **kw), base)
    d = solve_dps(prior, op, y, steps=2, seed=1)
    assert torch.equal(solve_dps(prior, op, y, steps=2, seed=1, x0_hook=lambda info: info["x0"]), d)
    assert torch.equal(solve_diffir2vr(prior, op, y, base="dps", config=DiffIR2VRConfig(enabled=False), steps=2, seed=1), d)


def test_wrapper_runs_and_couples_frames(prior):
    x = _clip(T=6)
    op = parse("sr:2")
    y = measure(op, x, 0.02, torch.Generator().manual_seed(0))
    kw = dict(steps=4, eta=0.8, cg_steps=3, t_start=300, seed=1)
    base = solve_dds(prior, op, y, sigma_y=0.02, **kw)
    info: dict = {}
    cfg = DiffIR2VRConfig(batch_size=3, warp_period=(0.0, 1.0))
    out = solve_diffir2vr(prior, op, y, sigma_y=0.02, config=cfg, info=info, **kw)
    assert out.shape == base.shape and bool(torch.isfinite(out).all())
    assert info["batches"] == [[0, 1, 2], [3, 4, 5]] and info["keyframes"] == [1, 4]
    assert info["warped_steps"] == 4 and info["merge_stats"]["merged_calls"] > 0
    # Warping at every step makes consecutive frames agree better than independent sampling.
    def tdiff(v):
        return float((v[:, :, 1:] - v[:, :, :-1]).abs().mean())

    assert tdiff(out) < tdiff(base)
    assert not torch.equal(out, base)
    again = solve_diffir2vr(prior, op, y, sigma_y=0.02, config=cfg, **kw)
    assert torch.equal(out, again)  # deterministic


def test_wrapper_bad_options(prior):
    y = torch.rand(1, 3, 4, 8, 8)
    op = parse("id")
    with pytest.raises(UserError):
        solve_diffir2vr(prior, op, y, base="nope")
    with pytest.raises(UserError):
        solve_diffir2vr(prior, op, y, config=DiffIR2VRConfig(keyframe="first"))
    with pytest.raises(UserError):
        DiffIR2VRConfig().with_options(ratio=0.3)


# ------------------------------------------------------------------------------------------
# CLI / workflow.
# ------------------------------------------------------------------------------------------


def test_cli_restore_diffir2vr(tmp_path):
    from click.testing import CliRunner

    from vidrestore.cli.main import cli
    from vidrestore.io import read_video, write_video

    x = _clip(T=4)
    src = tmp_path / "clip.npz"
    write_video(src, x, 24.0)
    y_path = tmp_path / "y.npz"
    r = CliRunner().invoke(cli, ["degrade", str(src), "-o", str(y_path), "--op", "sr:2", "--sigma-y", "0.02"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = tmp_path / "r.npz"
    args = ["restore", str(y_path), "-o", str(out), "-m", "diffir2vr", "--steps", "2", "--cg-steps", "2",
            "--batch-size", "2", "--warp-period", "1", "--warp-mode", "bilinear", "--merge-ratio", "0.5", "-q"]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    v, _ = read_video(out)
    assert v.shape == x.shape and float((v - x).abs().mean()) < 0.2
    r = CliRunner().invoke(cli, args[:-1] + ["--base", "ddpm"])
    assert r.exit_code == 2
    # Our defaults, the paper's settings, a START:END warp period; a bad period is a user error.
    for extra in ([], ["--paper"], ["--warp-period", "0.25:0.75", "--warp-strength", "0.5", "--gamma-schedule", "const"]):
        r = CliRunner().invoke(cli, ["restore", str(y_path), "-o", str(out), "-m", "diffir2vr", "--steps", "2", "-q"] + extra,
                               catch_exceptions=False)
        assert r.exit_code == 0, (extra, r.output)
    r = CliRunner().invoke(cli, args[:-1] + ["--warp-period", "0.9:0.1"])
    assert r.exit_code == 2 and "warp-period" in r.output
