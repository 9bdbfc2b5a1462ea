import torch

from vidrestore import ops as O
from vidrestore.linalg import adjointness_error
from vidrestore.metrics import psnr
from vidrestore.solvers import grad3, grad3_adjoint, solve_admm_tv, solve_cg


def _smooth_video(t=8, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand((1, 3, 1, h // 4, w // 4), generator=g)
    frames = []
    for i in range(t):
        f = torch.nn.functional.interpolate(base[:, :, 0], size=(h, w), mode="bicubic", align_corners=False)
        frames.append(torch.roll(f, shifts=i, dims=3))
    return torch.stack(frames, 2).clamp(0, 1).double()


def test_grad3_adjoint():
    f = lambda x: grad3(x)
    assert adjointness_error(f, grad3_adjoint, (2, 3, 5, 7, 6)) < 1e-12


def test_cg_solves_well_posed_problem_exactly():
    x = _smooth_video()
    op = O.parse("tblur:uniform:3:circular")  # invertible for T=8 (DFT of the kernel has no zero)
    y = op.A(x)
    xr = solve_cg(op, y, max_iter=200, tol=1e-12, clip=False)
    assert float((xr - x).abs().max()) < 1e-6


def test_cg_keeps_observed_pixels_for_inpainting():
    x = _smooth_video()
    op = O.parse("inpaint:0.5", seed=3)
    y = op.A(x)
    xr = solve_cg(op, y, max_iter=20)
    m = op.mask(8, 32, 32).bool().expand_as(x)
    assert torch.allclose(xr[m], x[m], atol=1e-9)
    # Holes are filled by the lift (normalised convolution), far better than zeros.
    assert psnr(xr, x) > psnr(y, x) + 15


def test_cg_beats_degraded_for_sr_and_tikhonov_pulls_to_start():
    x = _smooth_video()
    op = O.parse("tblur:uniform:3:circular,sr:2")
    y = op.A(x)
    xr = solve_cg(op, y, max_iter=50)
    assert psnr(xr, x) > psnr(op.lift(y).clamp(0, 1), x) + 3
    x0 = torch.full_like(x, 0.5)
    far = solve_cg(op, y, lam=1e6, x0=x0, max_iter=20, clip=False)
    assert float((far - 0.5).abs().max()) < 1e-3


def test_admm_tv_denoises_and_beats_least_squares_with_noise():
    x = _smooth_video()
    op = O.parse("id")
    y = O.measure(op, x, 0.08, torch.Generator().manual_seed(0))
    tv = solve_admm_tv(op, y, lam=0.03, rho=0.3, max_iter=60)
    assert psnr(tv, x) > psnr(y.clamp(0, 1), x) + 3


def test_admm_tv_noiseless_sr_close_to_cg():
    x = _smooth_video()
    op = O.parse("sr:2")
    y = op.A(x)
    a = solve_admm_tv(op, y, max_iter=30)
    c = solve_cg(op, y, max_iter=50)
    assert psnr(a, x) > psnr(op.lift(y).clamp(0, 1), x)
    assert abs(psnr(a, x) - psnr(c, x)) < 2.0


def test_solvers_are_deterministic_and_report_progress():
    x = _smooth_video()
    op = O.parse("sr:2")
    y = op.A(x)
    calls = []
    a = solve_admm_tv(op, y, max_iter=5, callback=calls.append)
    b = solve_admm_tv(op, y, max_iter=5)
    assert torch.equal(a, b) and len(calls) == 5 and set(calls[0]) == {"i", "x"}


def test_admm_tv_regularised_start_rescues_noisy_temporal_gaussian():
    # The unregularised 20-iteration CG start amplifies noise through the ill-conditioned
    # temporal Gaussian PSF; admm_tv_defaults uses a Tikhonov start for noisy data.
    from vidrestore.solvers import NOISY_ADMM_START_LAM, admm_tv_defaults

    x = _smooth_video(t=16, h=24, w=24)
    op = O.parse("tblur:gauss:2.0:circular", num_frames=16)
    sigma = 0.01
    y = O.measure(op, x, sigma, torch.Generator().manual_seed(1))
    kw = admm_tv_defaults(sigma)
    assert kw["start_lam"] == NOISY_ADMM_START_LAM > 0 and kw["lam"] == 1e-5 + 0.4 * sigma
    good = psnr(solve_admm_tv(op, y, **kw), x)
    bad = psnr(solve_admm_tv(op, y, lam=kw["lam"], start_lam=0.0), x)
    lifted = psnr(op.lift(y).clamp(0, 1), x)  # 19.8 dB; the regularised start: 22.8, plain: 5.3
    assert good > lifted + 2 and good > bad + 10
    # Noiseless data keeps the plain least-squares start.
    assert admm_tv_defaults(0.0)["start_lam"] == 0.0
