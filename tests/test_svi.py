"""SVI / DDS / DPS solvers and temporal windows, on a closed-form Gaussian prior (CPU, fast).

The analytic setting: pixel-space data ``x ~ N(mu, s^2 I)`` per pixel (``GaussianPrior`` in model
space with mean ``2 mu - 1`` and std ``2 s``) and a linear operator ``A``. The Tweedie estimate
and the predicted noise of this prior are per-pixel affine maps with the same slope for every
pixel, so they commute with the orthogonal projectors onto range(A^T) and null(A). A noiseless
SVI step with a converged CG data step returns ``A^+ y + P_N x0_hat`` (CG started at ``x0_hat``
converges to the least-squares solution nearest to it), hence, by induction over the steps:

    SVI output = A^+ y + P_N (unconditional DDS sample with the same noise draws).

Averaging over noise gives ``A^+ y + P_N mu = E[x | A x = y]``, the closed-form posterior mean of
the Gaussian prior given noiseless data; for invertible ``A`` the output is ``A^{-1} y`` exactly.
"""

from __future__ import annotations

import functools

import pytest
import torch

from vidrestore.diffusion import GaussianPrior, alphas_cumprod, linear_betas, sample_ddim
from vidrestore.errors import UserError
from vidrestore.ops import parse
from vidrestore.solvers import (
    blend_weights,
    pad_to_multiple,
    plan_windows,
    solve_cg,
    solve_dds,
    solve_dps,
    solve_in_windows,
    solve_svi,
    window_operator,
)
from vidrestore.solvers.svi import sampling_timesteps
from vidrestore.tensor import to_model, to_pixel

ACP = alphas_cumprod(linear_betas())
S_PIX = 0.05  # prior std in pixel units


def _mean_pattern(h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.35 + 0.3 * torch.rand(1, 1, 1, h, w, generator=g, dtype=torch.float64)


def _prior(mu_pix, s_pix=S_PIX):
    # Model-space prior N(2 mu - 1, (2 s)^2); mean shaped (1, 1, H, W) broadcasts over (B, C, T, H, W).
    return GaussianPrior(to_model(mu_pix)[0], 2 * s_pix, ACP)


def _sample_x(mu_pix, shape, seed=1, s_pix=S_PIX):
    g = torch.Generator().manual_seed(seed)
    return mu_pix + s_pix * torch.randn(shape, generator=g, dtype=torch.float64)


def _pinv(op, v):
    return op.A_dagger(v, max_iter=300, tol=1e-13)


# ------------------------------------------------------------------------------------------
# Closed-form behaviour.
# ------------------------------------------------------------------------------------------


def test_invertible_operator_recovers_truth():
    # Circular uniform 3-frame average on 8 frames: eigenvalues (1 + 2 cos(2 pi k / 8)) / 3 != 0.
    op = parse("tblur:uniform:3:circular")
    mu = _mean_pattern()
    x = _sample_x(mu, (1, 3, 8, 8, 8))
    out = solve_svi(_prior(mu), op, op.A(x), steps=10, cg_steps=40, cg_tol=1e-12)
    assert torch.allclose(out, x, atol=1e-8)
    # SDEdit-style start from the lifted measurement, and clipped Tweedie estimates.
    seen = []
    out = solve_svi(_prior(mu, 0.6), op, op.A(x), steps=5, cg_steps=40, cg_tol=1e-12, t_start=400, clip_x0=True,
                    callback=lambda d: seen.append((d["t"], float(d["x0"].abs().max()))))
    assert [t for t, _ in seen] == [400, 300, 200, 100, 0]
    assert max(m for _, m in seen) <= 1.0
    assert torch.allclose(out, x, atol=1e-8)



def test_cg_initial_estimate_is_closer_and_seeds_the_start():
    from vidrestore.solvers.svi import initial_estimate

    op = parse("tblur:uniform:5:circular")
    mu = _mean_pattern()
    x = _sample_x(mu, (1, 3, 16, 8, 8), s_pix=0.2).clamp(0, 1)
    y = op.A(x)
    lift, cg = initial_estimate(op, y, "lift"), initial_estimate(op, y, "cg")
    err = lambda v: float((v - x).square().mean())
    assert err(cg) < 0.1 * err(lift)  # the lift of a temporal blur is the blurry video itself
    # With noise the cg start is Tikhonov-regularised and stays bounded.
    yn = y + 0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    assert err(initial_estimate(op, yn, "cg", sigma_y=0.01)) < err(initial_estimate(op, yn, "lift"))
    # solve_svi noises exactly that estimate at t_start (first x_t has the init's mean).
    first = {}
    cb = lambda d: first.setdefault("x", d["x"])
    solve_svi(_prior(mu, 0.6), op, y, steps=2, t_start=1, init="cg", eta=0.0, callback=cb)
    abar = float(ACP[1])
    assert torch.allclose(first["x"], abar**0.5 * to_model(cg), atol=0.05)
    with pytest.raises(UserError, match="init"):
        solve_svi(_prior(mu), op, y, steps=2, t_start=1, init="bogus")

def test_sampling_timesteps():
    assert sampling_timesteps(20, 1000) == list(range(950, -1, -50))  # released SVI code
    assert sampling_timesteps(20, 1000, spacing="trailing")[::19] == [999, 49]
    assert sampling_timesteps(1000, 1000) == list(range(999, -1, -1))
    assert sampling_timesteps(5, 1000, t_start=400) == [400, 300, 200, 100, 0]
    with pytest.raises(UserError):
        sampling_timesteps(5, 1000, spacing="middle")


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_svi_is_data_plus_prior_sample_in_null_space(spacing):
    op = parse("tblur:uniform:3:circular,sr:2")
    mu = _mean_pattern()
    prior = _prior(mu)
    x = _sample_x(mu, (2, 3, 4, 8, 8))
    y = op.A(x)
    rec: dict[str, list] = {"x": [], "noise": []}

    def cb(d):
        rec["x"].append(d["x"])
        if d["noise"] is not None:
            rec["noise"].append(d["noise"])

    eta, steps = 0.5, 12
    out = solve_svi(prior, op, y, steps=steps, eta=eta, cg_steps=60, cg_tol=1e-13, callback=cb, spacing=spacing, t_start=None)
    # The same chain without data: DDS renoising with the recorded noise draws.
    draws = iter(rec["noise"])
    x_unc = sample_ddim(
        prior, rec["x"][0], sampling_timesteps(steps, 1000, spacing=spacing), eta=eta, eta_mode="dds", noise_fn=lambda shape, g: next(draws)
    )
    v = to_pixel(x_unc)
    expected = _pinv(op, y) + (v - _pinv(op, op.A(v)))
    assert torch.allclose(out, expected, atol=1e-7)
    # Data consistency of the result.
    assert float((op.A(out) - y).abs().max()) < 1e-8


def test_svi_average_is_closed_form_posterior_mean():
    op = parse("sr:2")
    mu = _mean_pattern()
    B = 64
    x = _sample_x(mu, (B, 3, 2, 8, 8))
    y = op.A(x)
    out = solve_svi(_prior(mu), op, y, steps=15, eta=0.8, cg_steps=5, seed=3)
    # E[x | A x = y] = A^+ y + P_N mu for x ~ N(mu, s^2 I) and noiseless y.
    mu_b = mu.expand_as(x)
    post_mean = _pinv(op, y) + (mu_b - _pinv(op, op.A(mu_b)))
    dev = (out - post_mean).mean(0)  # average over 64 independent clips
    assert float(dev.abs().max()) < 4 * S_PIX / B**0.5 + 1e-3
    # Each sample is consistent with the data (range component fixed by y).
    assert float((op.A(out) - y).abs().max()) < 1e-6


def test_noisy_measurement_proximal_data_step():
    mu = _mean_pattern()
    prior = _prior(mu)
    x = _sample_x(mu, (4, 3, 4, 8, 8))
    g = torch.Generator().manual_seed(5)
    sigma_y, gamma = 0.1, 0.25
    # Denoising (A = I): one CG step solves (1 + gamma) v = x0_hat + gamma y exactly.
    op = parse("id")
    y = x + sigma_y * torch.randn(x.shape, generator=g, dtype=torch.float64)
    errs = []

    def cb(d):
        ref = (to_pixel(d["x0"]) + gamma * y) / (1 + gamma)
        errs.append(float((d["x0_data"] - ref).abs().max()))

    out = solve_svi(prior, op, y, steps=15, eta=0.15, sigma_y=sigma_y, gamma=gamma, gamma_schedule="const", t_start=None, callback=cb)
    assert max(errs) < 1e-10
    # The prior removes most of the noise (posterior-mean MSE here is 0.2 * sigma_y^2).
    assert float(((out - x) ** 2).mean()) < 0.5 * sigma_y**2
    # A spatio-temporal operator: the callback's data step solves the proximal equations.
    op = parse("tblur:uniform:3:circular,sr:2")
    y = op.A(x) + 0.02 * torch.randn(op.A(x).shape, generator=g, dtype=torch.float64)
    res = []

    def cb2(d):
        v, x0p = d["x0_data"], to_pixel(d["x0"])
        lhs = v + gamma * op.A_adjoint_A(v)
        rhs = x0p + gamma * op.A_adjoint(y)
        res.append(float((lhs - rhs).norm() / rhs.norm()))

    out = solve_svi(prior, op, y, steps=8, sigma_y=0.02, gamma=gamma, gamma_schedule="const", cg_steps=30, cg_tol=1e-12, callback=cb2)
    assert max(res) < 1e-9 and out.shape == x.shape


def test_library_defaults_are_restore_defaults():
    """One source of defaults: solve_svi's keyword defaults are SVIOptions' (restore's), and
    t_start="default" resolves by noise level as the options do."""
    import inspect

    from vidrestore.solvers.svi import SVI_DEFAULTS, default_t_start
    from vidrestore.workflows.methods import SVIOptions

    sig = inspect.signature(solve_svi).parameters
    for key, value in SVI_DEFAULTS.items():
        assert sig[key].default == value == getattr(SVIOptions(), key)
    assert SVIOptions.for_noise(0.01).t_start == default_t_start(0.01) == 200
    # per-frame DDS keeps the noisy start it was measured with
    from vidrestore.solvers.svi import T_START_NOISY_DDS
    from vidrestore.workflows.methods import METHODS, DDSOptions

    assert METHODS["dds"].options is DDSOptions and DDSOptions.for_noise(0.01).t_start == T_START_NOISY_DDS == 100
    assert DDSOptions.for_noise(0.0).t_start == 300
    assert SVIOptions.for_noise(0.0).t_start == default_t_start(0.0) == 300
    # The default start is the lifted measurement noised to t = 300 (noiseless): the first
    # callback sees t = 300.
    mu = _mean_pattern()
    seen = []
    solve_svi(_prior(mu), parse("tblur:uniform:3:circular"), _sample_x(mu, (1, 3, 4, 8, 8)), steps=3, callback=lambda d: seen.append(d["t"]))
    assert seen[0] == 300


def test_sigma_gamma_schedule_weights_data_by_noise_ratio():
    # gamma_schedule="sigma": g_t = gamma (sigma_t / sigma_y)^2, sigma_t = sqrt((1 - abar) / abar) / 2
    # (DiffPIR's weight). Denoising: the data step is (x0_hat + g_t y) / (1 + g_t) exactly, so the
    # measurement dominates at large t and fades as t -> 0.
    from vidrestore.solvers.svi import data_weight

    mu = _mean_pattern()
    prior = _prior(mu)
    x = _sample_x(mu, (2, 3, 4, 8, 8))
    sigma_y, gamma = 0.1, 0.5
    y = x + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    acp = prior.alphas_cumprod
    seen = []

    def cb(d):
        a = float(acp[d["t"]])
        g_t = gamma * (1 - a) / a / (4 * sigma_y**2)
        assert g_t == pytest.approx(data_weight(gamma, "sigma", a, sigma_y))
        ref = (to_pixel(d["x0"]) + g_t * y) / (1 + g_t)
        seen.append((d["t"], g_t, float((d["x0_data"] - ref).abs().max())))

    out = solve_svi(prior, op := parse("id"), y, steps=10, t_start=300, eta=0.5, sigma_y=sigma_y, gamma=gamma,
                    gamma_schedule="sigma", callback=cb)
    assert max(e for _, _, e in seen) < 1e-10
    assert seen[0][1] > 15 and seen[-1][1] < 0.01  # t = 300: data-dominated (19.2); t = 0: prior only
    # A posterior sample: MSE about 0.5 sigma_y^2 (measured 0.0050), half the input's.
    assert float(((out - x) ** 2).mean()) < 0.6 * sigma_y**2
    const = solve_svi(prior, op, y, steps=10, t_start=300, eta=0.5, sigma_y=sigma_y, gamma=gamma, gamma_schedule="const")
    assert not torch.equal(out, const)
    # Noiseless measurements ignore the schedule.
    y0 = op.A(x)
    assert torch.equal(solve_svi(prior, op, y0, steps=3, gamma_schedule="sigma"), solve_svi(prior, op, y0, steps=3, gamma_schedule="const"))
    with pytest.raises(UserError):
        solve_svi(prior, op, y, steps=2, sigma_y=0.1, gamma_schedule="linear")
    assert data_weight(3.0, "const", 0.2, 0.1) == 3.0


# ------------------------------------------------------------------------------------------
# Batch-consistent noise, determinism, ablations.
# ------------------------------------------------------------------------------------------


def _static_problem():
    mu = _mean_pattern()
    frame = _sample_x(mu, (1, 3, 1, 8, 8))
    x = frame.expand(1, 3, 6, 8, 8).contiguous()  # a static scene
    op = parse("tblur:uniform:3:circular,sr:2")
    return _prior(mu), op, x, op.A(x)


def test_shared_noise_is_identical_across_frames_and_keeps_static_scene_static():
    prior, op, x, y = _static_problem()
    seen = []

    def cb(d):
        seen.append((d["i"], d["x"], d["noise"]))

    out_shared = solve_svi(prior, op, y, steps=10, eta=0.8, callback=cb)
    assert len(seen) == 10
    for i, xt, z in seen:
        if i == 0:
            assert torch.equal(xt, xt[:, :, :1].expand_as(xt))  # shared x_T
        if z is not None:
            assert torch.equal(z, z[:, :, :1].expand_as(z))  # shared fresh noise
    assert seen[-1][2] is None  # no renoising into the final estimate
    seen.clear()
    out_indep = solve_dds(prior, op, y, steps=10, eta=0.8, callback=cb)
    z = seen[0][2]
    assert not torch.allclose(z[:, :, 0], z[:, :, 1])

    def frame_variation(v):
        return float((v[:, :, 1:] - v[:, :, :-1]).abs().mean())

    assert frame_variation(out_shared) < 1e-6
    assert frame_variation(out_indep) > 1e-2


def test_per_frame_noise_follows_absolute_frame_ids():
    prior, op, x, y = _static_problem()
    op2 = parse("sr:2")
    y2 = op2.A(x)
    first = {}
    solve_dds(prior, op2, y2, steps=3, eta=0.5, callback=lambda d: first.setdefault("whole", d["noise"]) if d["i"] == 0 else None)
    solve_dds(
        prior, op2, y2[:, :, 2:5], steps=3, eta=0.5, frame_ids=[2, 3, 4],
        callback=lambda d: first.setdefault("part", d["noise"]) if d["i"] == 0 else None,
    )
    assert torch.equal(first["whole"][:, :, 2:5], first["part"])


def test_determinism_with_seed():
    prior, op, x, y = _static_problem()
    y = y + 0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype)
    kw = dict(steps=6, eta=0.5, shared_noise=False)
    a = solve_svi(prior, op, y, seed=7, **kw)
    b = solve_svi(prior, op, y, seed=7, **kw)
    c = solve_svi(prior, op, y, seed=8, **kw)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_cg_data_step_reduces_residual_more_than_gd():
    op = parse("tblur:uniform:5:circular,blur:gauss:1.0")
    mu = _mean_pattern()
    x = _sample_x(mu, (1, 3, 8, 8, 8), s_pix=0.2).clamp(0, 1).float()  # float32: fast conv2d
    y = op.A(x)
    res = {}
    for step in ("cg", "gd"):
        def cb(d, step=step):
            if d["i"] == 0:  # same x_T and Tweedie video for both: compare one data step
                res[step] = (float((op.A(to_pixel(d["x0"])) - y).norm()), float((op.A(d["x0_data"]) - y).norm()))

        solve_svi(_prior(mu), op, y, steps=4, cg_steps=5, data_step=step, callback=cb)
    assert res["cg"][0] == res["gd"][0]
    assert res["gd"][1] < 0.5 * res["gd"][0]
    assert res["cg"][1] < 0.8 * res["gd"][1]  # CG is optimal over the same Krylov space


def test_bad_arguments():
    prior, op, x, y = _static_problem()
    with pytest.raises(UserError):
        solve_svi(prior, op, y, data_step="sgd")
    with pytest.raises(UserError):
        solve_svi(prior, op, y, eta=1.5)
    with pytest.raises(UserError):
        solve_svi(prior, op, y[:, :, :2])  # fewer frames than the temporal kernel
    with pytest.raises(UserError):
        solve_dds(prior, op, y, shared_noise=True)


# ------------------------------------------------------------------------------------------
# DPS.
# ------------------------------------------------------------------------------------------


def test_dps_runs_with_gradients_and_reduces_residual():
    mu = _mean_pattern()
    prior = _prior(mu, s_pix=0.15)
    op = parse("sr:2")
    x = _sample_x(mu, (1, 3, 2, 8, 8), s_pix=0.15)
    y = op.A(x)
    residuals = []
    with torch.no_grad():  # DPS switches gradients on locally
        out0 = solve_dps(prior, op, y, steps=40, zeta=0.0)
        out1 = solve_dps(prior, op, y, steps=40, zeta=1.0, callback=lambda d: residuals.append(float(d["residual"][0])))
    assert not out1.requires_grad and out1.shape == x.shape
    r0, r1 = float((op.A(out0) - y).norm()), float((op.A(out1) - y).norm())
    assert r1 < 0.5 * r0
    assert residuals[-1] < residuals[0]
    # clip_x0 clamps the Tweedie estimate the update uses.
    seen = []
    solve_dps(prior, op, y, steps=5, clip_x0=True, callback=lambda d: seen.append(float(d["x0"].abs().max())))
    assert max(seen) <= 1.0


def test_dps_samples_the_gaussian_posterior_on_inpainting():
    # Exact prior N(mu, s^2) per pixel, noiseless 50 % inpainting: the posterior keeps the observed
    # pixels and leaves the missing ones N(mu, s^2). 1000-step DPS (Algorithm 1) samples it; 50 steps
    # cannot pull the observed pixels in (rms 0.127 measured).
    s = 0.15
    mu = _mean_pattern()
    op = parse("inpaint:0.5", seed=0)
    x = _sample_x(mu, (1, 3, 4, 8, 8), s_pix=s)
    y = op.A(x)
    obs = op.A_adjoint(op.A(torch.ones_like(x))).bool()
    assert 0.4 < float(obs.double().mean()) < 0.6
    rms = {}
    for steps in (50, 1000):
        out = solve_dps(_prior(mu, s), op, y, steps=steps, zeta=0.3, seed=0)
        rms[steps] = float((out - x)[obs].pow(2).mean().sqrt())
    assert rms[1000] < 0.015 and rms[50] > 0.1  # measured 0.0069 and 0.127
    d = (out - mu.expand_as(x))[~obs]  # missing pixels of the 1000-step sample around the prior mean
    assert abs(float(d.mean())) < 0.025  # 3 standard errors for 384 values; measured -0.0045
    assert 0.13 < float(d.std()) < 0.17  # prior std 0.15; measured 0.145


def test_dps_is_limited_by_conditioning_on_temporal_averages():
    # Why DPS trails SVI on the benchmark's temporal tasks even with an exact prior: circular 7-frame
    # averaging on 16 frames is invertible (posterior = truth) but eig(A^T A) goes down to 8e-4, and
    # DPS's one gradient step per diffusion step plus fresh per-frame noise never settles the weak
    # temporal modes. Static clip, 4x4 frames.
    from vidrestore.metrics import psnr

    s = 0.15
    mu = _mean_pattern(4, 4)
    x = _sample_x(mu, (1, 3, 1, 4, 4), s_pix=s).clamp(0, 1).expand(1, 3, 16, 4, 4).contiguous()
    op = parse("tblur:uniform:7:circular", num_frames=16)
    y = op.A(x)
    dps = psnr(solve_dps(_prior(mu, s), op, y, steps=1000, zeta=1.0, seed=0, multiple=4), x)
    dps_shared = psnr(solve_dps(_prior(mu, s), op, y, steps=1000, zeta=1.0, seed=0, multiple=4, shared_noise=True), x)
    svi = psnr(solve_svi(_prior(mu, s), op, y, steps=20, eta=0.15, multiple=4), x)
    assert dps > 20.0  # measured 25.58 dB (a floor only: no test caps a competitor's score)
    assert dps_shared > dps + 8.0  # measured 36.57 dB: shared noise removes most of the temporal error
    assert svi > 100.0  # exact up to float64 round-off


# ------------------------------------------------------------------------------------------
# Windows and padding.
# ------------------------------------------------------------------------------------------


def _smooth_video(T, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 1, h, w, generator=g, dtype=torch.float64)
    t = torch.arange(T, dtype=torch.float64).view(1, 1, T, 1, 1)
    return (0.25 + 0.5 * base + 0.2 * torch.sin(t / 5 + 6 * base)).clamp(0, 1)


@pytest.mark.parametrize(
    "spec",
    [
        "tblur:uniform:5:circular",
        "tblur:uniform:7:circular,sr:2",
        "tblur:gauss:0.7:reflect,blur:gauss:1.0",
        "tblur:uniform:3:replicate,inpaint:0.5:perframe",
        "fdrop:2",
        "tblur:uniform:3:circular,fdrop:2",
    ],
)
def test_window_operators_are_exact_restrictions(spec):
    T = 37
    x = torch.rand(1, 3, T, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    op = parse(spec, seed=4, num_frames=T)
    y = op.A(x)
    plan = plan_windows(T, op, window=16, overlap=3)
    used = set()
    for win in plan:
        op_w, out_ids = window_operator(op, win.frame_ids, T)
        ref = y[:, :, out_ids]
        assert torch.allclose(op_w.A(x[:, :, list(win.frame_ids)]), ref, atol=1e-12)
        used.update(out_ids)
        s, e = win.core
        assert set(range(s, e)) <= set(win.frame_ids)
    # Cores cover every frame; windows are bounded in length.
    covered = set().union(*(range(*w.core) for w in plan))
    assert covered == set(range(T))
    assert max(len(w.frame_ids) for w in plan) <= 17
    if "circular" in spec and "fdrop" not in spec:
        assert plan[0].frame_ids[0] > plan[0].frame_ids[-1]  # ring: the first window wraps
        assert used == set(range(y.shape[2]))  # every measurement frame is used exactly
    if "fdrop" in spec:
        assert all(w.frame_ids[0] % 2 == 0 for w in plan)


def test_blend_weights_sum_to_one_with_linear_ramps():
    op = parse("tblur:gauss:0.7:reflect")
    plan = plan_windows(40, op, window=16, overlap=4)
    w = blend_weights(plan, 40)
    assert torch.allclose(w.sum(0), torch.ones(40, dtype=torch.float64))
    s1, e0 = plan[1].core[0], plan[0].core[1]
    assert e0 - s1 == 4
    assert torch.allclose(w[1, s1:e0], torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64))
    assert torch.all(w[0, : s1] == 1)


def _seam_mask(plan, T):
    # Frames inside any overlap of two cores.
    seam = torch.zeros(T, dtype=torch.bool)
    for a, b in zip(plan, plan[1:]):
        seam[b.core[0] : a.core[1]] = True
    return seam


def test_windowed_cg_and_svi_match_whole_video_away_from_seams():
    T = 40
    spec = "tblur:gauss:0.7:reflect"
    op = parse(spec)
    x = _smooth_video(T)
    y = op.A(x)
    plan = plan_windows(T, op, window=16, overlap=4)
    seam = _seam_mask(plan, T)
    cg = functools.partial(solve_cg, max_iter=300, tol=1e-9, clip=False)
    whole = cg(op, y)
    win = solve_in_windows(cg, spec, y, window=16, overlap=4)
    diff = (whole - win).abs().amax(dim=(0, 1, 3, 4))
    assert float(diff[~seam].max()) < 1e-3 and float(diff.max()) < 1e-2
    mu = torch.full((1, 1, 1, 8, 8), 0.5, dtype=torch.float64)
    svi = functools.partial(solve_svi, _prior(mu, 0.25), steps=8, cg_steps=20)
    whole = svi(op, y)
    win = solve_in_windows(svi, spec, y, window=16, overlap=4)
    diff = (whole - win).abs().amax(dim=(0, 1, 3, 4))
    assert float(diff[~seam].max()) < 1e-2 and float(diff.max()) < 6e-2
    assert float((whole - x).abs().mean()) < 1e-4  # invertible op, converged CG: exact
    assert float((win - x).abs().mean()) < 1e-2  # windows: small edge effects only


def test_windowed_perframe_inpainting_uses_absolute_masks():
    T = 30
    x = _smooth_video(T)
    spec = "inpaint:0.5:perframe"
    op = parse(spec, seed=2)
    y = op.A(x)
    whole = solve_cg(op, y, max_iter=5)
    win = solve_in_windows(solve_cg, spec, y, window=12, overlap=3, op_seed=2, max_iter=5)
    assert torch.allclose(whole, win, atol=1e-12)


def test_windowed_frame_drop_keeps_measured_frames():
    T = 33
    x = _smooth_video(T)
    op = parse("fdrop:2", num_frames=T)
    y = op.A(x)
    seen = []
    out = solve_in_windows(
        functools.partial(solve_cg, max_iter=5), "fdrop:2", y, window=10, overlap=2, num_frames=T,
        callback=lambda d: seen.append(d["frames"]),
    )
    assert out.shape == x.shape
    assert all(f[0] % 2 == 0 and (f[-1] % 2 == 0 or f[-1] == T - 1) for f in seen)
    assert torch.allclose(out[:, :, ::2], y, atol=1e-12)


def test_windows_reject_too_short_window():
    with pytest.raises(UserError):
        plan_windows(40, parse("tblur:uniform:7:circular"), window=8, overlap=4)


def test_pad_to_multiple_round_trip_and_padded_solve():
    # float32: float64 conv2d has no fast CPU kernel.
    v = 0.5 + 0.1 * torch.randn(1, 3, 4, 13, 11, generator=torch.Generator().manual_seed(0))
    p, size = pad_to_multiple(v, 8)
    assert p.shape[-2:] == (16, 16) and size == (13, 11)
    assert torch.equal(p[..., :13, :11], v)
    assert torch.equal(p[..., 13, :11], v[..., 12, :])  # half-sample reflection
    prior = GaussianPrior(0.0, 0.2, ACP)
    op = parse("tblur:uniform:3:circular,blur:gauss:0.5")
    y = op.A(v)
    shapes = []
    out = solve_svi(prior, op, y, steps=6, cg_steps=30, callback=lambda d: shapes.append(d["x"].shape))
    assert shapes[0][-2:] == (16, 16)  # GaussianPrior has no `multiple`: 8 by default
    assert out.shape == v.shape
    assert float((op.A(out) - y).norm() / y.norm()) < 2e-3
    unpadded = solve_svi(prior, op, y, steps=6, cg_steps=30, multiple=1)
    assert float((out - unpadded).abs().mean()) < 2e-3


def test_solver_layer_imports():
    # L3: solvers import ops, diffusion, linalg, tensor and errors (plus siblings), never
    # nets, checkpoint, priors, data, train, cli or workflows: they receive a denoiser object.
    import ast
    from pathlib import Path

    import vidrestore.solvers as pkg

    # PIL: the Lanczos interpolation baseline (solvers/baselines.py) resizes with Pillow.
    allowed_abs = {"torch", "numpy", "math", "typing", "__future__", "inspect", "dataclasses", "functools", "PIL"}
    allowed_rel = {"ops", "diffusion", "linalg", "tensor", "errors", "classical", "svi", "windows"}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert a.name.split(".")[0] in allowed_abs, (path.name, a.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert node.module.split(".")[0] in allowed_abs, (path.name, node.module)
                else:
                    assert (node.module or "").split(".")[0] in allowed_rel, (path.name, node.module)


def test_restore_passes_gamma_to_the_noisy_data_step():
    # `restore -m svi --gamma G` must reach the DDS step (I + g A^T A) v = x0 + g A^T y (g = G, or
    # G (sigma_t / sigma_y)^2 with the default sigma schedule): with sigma_y > 0 a larger data
    # weight pulls the result closer to the measurement.
    from vidrestore.ops import measure, parse
    from vidrestore.workflows.jobs import METHODS, NOISY_DIFFUSION, restore_video

    assert NOISY_DIFFUSION == {"t_start": 200, "gamma": 0.3, "gamma_schedule": "sigma"}
    assert METHODS["svi"].options().t_start is None  # set from the noise level of each measurement
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 16, 16, generator=g)
    op = parse("tblur:uniform:3:circular", num_frames=8)
    y = measure(op, x, 0.05, torch.Generator().manual_seed(1))
    for schedule in ("const", "sigma"):
        res = {}
        for gamma in (0.1, 10.0):
            out = restore_video(y, op, method="svi", sigma_y=0.05, options={"steps": 3, "gamma": gamma, "gamma_schedule": schedule}, quiet=True)
            res[gamma] = float((op.A(out) - y).pow(2).mean())
        assert res[10.0] < 0.5 * res[0.1], schedule
    # noisy defaults are NOISY_DIFFUSION; noiseless ones start at t = 300
    default = restore_video(y, op, method="svi", sigma_y=0.05, options={"steps": 3}, quiet=True)
    explicit = restore_video(y, op, method="svi", sigma_y=0.05, options={"steps": 3, **NOISY_DIFFUSION}, quiet=True)
    other = restore_video(y, op, method="svi", sigma_y=0.05, options={"steps": 3, **NOISY_DIFFUSION, "t_start": 500}, quiet=True)
    assert torch.equal(default, explicit) and not torch.equal(default, other)
    # per-frame DDS starts noisy measurements at t = 100, in restore and in solve_dds alike
    from vidrestore.priors import load_prior
    from vidrestore.solvers import solve_dds

    dds = restore_video(y, op, method="dds", sigma_y=0.05, options={"steps": 3}, quiet=True)
    dds_100 = restore_video(y, op, method="dds", sigma_y=0.05, options={"steps": 3, "t_start": 100}, quiet=True)
    dds_200 = restore_video(y, op, method="dds", sigma_y=0.05, options={"steps": 3, "t_start": 200}, quiet=True)
    assert torch.equal(dds, dds_100) and not torch.equal(dds, dds_200)
    prior = load_prior("default")
    kw = {"steps": 3, "sigma_y": 0.05, "seed": 0}
    assert torch.equal(solve_dds(prior, op, y, **kw), solve_dds(prior, op, y, t_start=100, **kw))
    clean = measure(op, x, 0.0, torch.Generator().manual_seed(1))
    a = restore_video(clean, op, method="svi", options={"steps": 3}, quiet=True)
    b = restore_video(clean, op, method="svi", options={"steps": 3, "t_start": 300}, quiet=True)
    assert torch.equal(a, b)


def test_restore_precision_bf16_is_close_to_fp32_and_bad_names_fail():
    # --precision bf16 casts the prior's weights to bfloat16: the restored video stays within a
    # small distance of the float32 one (same seed), and an unknown name is a one-line UserError.
    from vidrestore.metrics import psnr
    from vidrestore.ops import measure, parse
    from vidrestore.workflows.jobs import restore_video

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 16, 16, generator=g)
    op = parse("sr:2", num_frames=4)
    y = measure(op, x, 0.0, torch.Generator().manual_seed(1))
    out = {p: restore_video(y, op, method="svi", options={"steps": 3, "precision": p}, quiet=True) for p in ("fp32", "bf16")}
    assert not torch.equal(out["fp32"], out["bf16"])  # the option reaches the prior
    assert float(psnr(out["bf16"], out["fp32"])) > 35.0
    # data consistency holds in both precisions (the CG data step runs in float32; the output
    # clamp to [0, 1] leaves a few pixels off)
    for p in out:
        assert float((op.A(out[p]) - y).abs().mean()) < 0.005
    with pytest.raises(UserError, match="precision"):
        restore_video(y, op, method="svi", options={"steps": 1, "precision": "int8"}, quiet=True)


def test_noise_share_interpolates_between_identical_and_independent_noise():
    # noise_share rho: sqrt(rho) z_shared + sqrt(1 - rho) z_frame; 1 and 0 reproduce the
    # shared_noise=True / False paths exactly, and the inter-frame correlation is rho.
    from vidrestore.solvers.svi import _Noise

    like = torch.zeros(1)
    shape = (1, 3, 4, 32, 32)
    ids = [0, 1, 2, 3]
    z1 = _Noise(shape, 1.0, 5, ids, like).draw()
    assert torch.equal(z1[:, :, 0], z1[:, :, 3])
    for rho in (0.0, 0.3, 0.7):
        z = _Noise(shape, rho, 5, ids, like).draw()
        a, b = z[:, :, 0].flatten(), z[:, :, 2].flatten()
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        assert abs(corr - rho) < 0.05, (rho, corr)
        assert abs(float(z.std()) - 1.0) < 0.03
    prior = GaussianPrior(0.5, 0.3, alphas_cumprod(linear_betas()))
    op = parse("tblur:uniform:3:circular")
    y = op.A(torch.rand(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)))
    base = dict(steps=4, eta=0.8, seed=1)
    assert torch.equal(solve_svi(prior, op, y, noise_share=1.0, **base), solve_svi(prior, op, y, **base))
    assert torch.equal(solve_svi(prior, op, y, noise_share=0.0, **base), solve_svi(prior, op, y, shared_noise=False, **base))
    mid = solve_svi(prior, op, y, noise_share=0.5, **base)
    assert not torch.equal(mid, solve_svi(prior, op, y, **base))
    with pytest.raises(UserError, match="noise_share"):
        solve_svi(prior, op, y, noise_share=1.5, **base)


def test_dpmpp_2m_sampler_first_order_is_dds_and_runs_through_restore():
    """--sampler dpm++2m: its first-order step is exactly DDS's renoising (checked by turning
    the second-order term off), the full sampler is deterministic per seed, keeps data
    consistency, and is reachable through restore."""
    import vidrestore.solvers.svi as S
    from vidrestore.diffusion import GaussianPrior, alphas_cumprod, linear_betas

    prior = GaussianPrior(0.0, 0.5, alphas_cumprod(linear_betas()))
    op = parse("sr:2")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 16, 16, generator=g) * 0.4 + 0.3
    y = op.A(x)
    for eta in (0.0, 0.8):
        ddim = S.solve_svi(prior, op, y, steps=8, eta=eta, t_start=None, seed=3)
        orig = S._dpmpp_2m_step
        try:
            S._dpmpp_2m_step = lambda xx, x0, ab, abn, e, noise, prev: orig(xx, x0, ab, abn, e, noise, None)
            first = S.solve_svi(prior, op, y, steps=8, eta=eta, t_start=None, seed=3, sampler="dpm++2m")
        finally:
            S._dpmpp_2m_step = orig
        # eta = 0: identical updates; eta > 0: the SDE form uses its own noise scale, so only
        # the deterministic case is an identity
        if eta == 0.0:
            assert float((first - ddim).abs().max()) < 1e-5
    a = S.solve_svi(prior, op, y, steps=8, eta=0.8, t_start=None, seed=3, sampler="dpm++2m")
    b = S.solve_svi(prior, op, y, steps=8, eta=0.8, t_start=None, seed=3, sampler="dpm++2m")
    assert torch.equal(a, b) and not torch.equal(a, ddim)
    assert float((op.A(a) - y).abs().mean()) < 5e-3  # the last step is data consistent
    with pytest.raises(UserError, match="sampler"):
        S.solve_svi(prior, op, y, steps=2, sampler="heun")
    from vidrestore.workflows.jobs import restore_video

    out = restore_video(y, op, method="svi", options={"steps": 3, "sampler": "dpm++2m", "prior": "default"}, quiet=True)
    assert out.shape == x.shape and float((op.A(out) - y).abs().mean()) < 0.02


def test_flow_transported_noise_follows_the_motion():
    """noise_flows: zero flow is the paper's identical noise bit for bit; a translation moves the
    shared draw with the content and fills uncovered pixels with unit-variance frame noise."""
    import vidrestore.solvers.svi as S

    shape = (1, 3, 3, 8, 12)
    like = torch.zeros(shape)
    same = S._Noise(shape, 1.0, 5, [0, 1, 2], like).draw()
    zero = S._Noise(shape, 1.0, 5, [0, 1, 2], like, flows=torch.zeros(1, 2, 3, 8, 12)).draw()
    assert torch.equal(same, zero)
    flows = torch.zeros(1, 2, 3, 8, 12)
    flows[0, 0, 0] = -2.0  # frame 0(p) ~ ref(p - 2 px in x): content moved right by 2
    flows[0, 0, 2] = 3.0
    src = S._Noise(shape, 1.0, 5, [0, 1, 2], like, flows=flows)
    z = src.draw()
    ref = z[:, :, 1]
    assert torch.equal(z[:, :, 0, :, 2:], ref[:, :, :, :-2]) and torch.equal(z[:, :, 2, :, :-3], ref[:, :, :, 3:])
    assert not torch.equal(z[:, :, 0, :, :2], ref[:, :, :, :2])  # uncovered: the frame's own noise
    zs = torch.cat([src.draw() for _ in range(200)], dim=0)
    assert abs(float(zs.std()) - 1.0) < 0.02 and abs(float(zs.mean())) < 0.02
    # through restore: flows from the lifted measurement, deterministic, data consistent
    from vidrestore.workflows.jobs import restore_video

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 16, 16, generator=g)
    op = parse("sr:2")
    y = op.A(x)
    a = restore_video(y, op, method="svi", options={"steps": 3, "noise_flow": True}, quiet=True)
    b = restore_video(y, op, method="svi", options={"steps": 3, "noise_flow": True}, quiet=True)
    assert torch.equal(a, b) and float((op.A(a) - y).abs().mean()) < 0.02


def _smooth_clip(t=4, h=16, w=16):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([torch.stack([0.5 + 0.3 * torch.sin(5 * xx + 3 * yy + 0.3 * k + c) for c in range(3)]) for k in range(t)], 1)[None]


class _CountingPrior:
    def __init__(self, prior):
        self.prior, self.calls = prior, []
        self.alphas_cumprod = prior.alphas_cumprod

    def eps_and_x0(self, x, t):
        self.calls.append(int(t))
        return self.prior.eps_and_x0(x, t)


def test_auto_t_start_follows_the_noise_and_costs_few_calls():
    from vidrestore.solvers.svi import AUTO_T_CANDIDATES, auto_t_start, initial_estimate

    prior = GaussianPrior(0.0, 0.5, alphas_cumprod(linear_betas()))
    x = _smooth_clip()
    op = parse("id")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(to_model(x).shape, generator=g)
    starts = []
    for s in (0.02, 0.2, 0.5):
        y = x + s * torch.randn(x.shape, generator=g)
        counted = _CountingPrior(prior)
        starts.append(auto_t_start(counted, op, y, initial_estimate(op, y), s, z))
        assert len(counted.calls) <= 4  # bisection over the 8 candidates
        assert starts[-1] in AUTO_T_CANDIDATES
    # noisier measurements leave more to the prior: a later start (measured 50, 100, 300)
    assert starts[0] < starts[1] < starts[2]
    # a huge floor accepts every candidate: the largest one
    y = x + 0.02 * torch.randn(x.shape, generator=g)
    assert auto_t_start(prior, op, y, initial_estimate(op, y), 0.02, z, delta=10.0) == max(AUTO_T_CANDIDATES)


def test_solve_svi_auto_start_is_deterministic_and_starts_there():
    prior = GaussianPrior(0.0, 0.5, alphas_cumprod(linear_betas()))
    x = _smooth_clip()
    op = parse("tblur:uniform:3:reflect")
    y = op.A(x) + 0.2 * torch.randn(op.A(x).shape, generator=torch.Generator().manual_seed(1))
    first = []
    a = solve_svi(prior, op, y, sigma_y=0.2, t_start="auto", steps=4, seed=3, callback=lambda d: first.append(d["t"]))
    b = solve_svi(prior, op, y, sigma_y=0.2, t_start="auto", steps=4, seed=3)
    assert torch.equal(a, b)
    assert first[0] > 50 and first[-1] == 0 and len(first) == 4
    with pytest.raises(UserError, match="t_start must be"):
        solve_svi(prior, op, y, sigma_y=0.2, t_start="late", steps=4)
