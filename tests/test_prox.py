"""Exact proximal data step (ops/prox.py): the closed-form solve of (I + gamma A^T A) v = rhs
agrees with conjugate gradient run to convergence (float64), falls back (None) where no
separable eigenbasis exists, is counted consistently, and reaches SVI / DDS / the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from vidrestore.errors import UserError
from vidrestore.linalg import conjugate_gradient
from vidrestore.ops import SpatialBlur, count_applications, gaussian_kernel, motion_kernel, parse, prox_solver
from vidrestore.ops.base import Composition, LinearOperator
from vidrestore.ops.prox import temporal_matrix
from vidrestore.ops.window import pad_operator, window_operator

F64 = torch.float64

# name -> (operator factory, input shape). Odd sizes catch padding and boundary bugs.
SUPPORTED = {
    "tblur-uniform-reflect": (lambda: parse("tblur:uniform:7:reflect"), (2, 3, 9, 5, 4)),
    "tblur-uniform-circular": (lambda: parse("tblur:uniform:7:circular"), (1, 2, 8, 5, 4)),
    "tblur-gauss-replicate": (lambda: parse("tblur:gauss:1.5:replicate"), (1, 2, 11, 3, 4)),
    "blur-gauss": (lambda: parse("blur:gauss:1.5"), (1, 2, 3, 17, 13)),
    "blur-gauss-circular": (lambda: SpatialBlur(gaussian_kernel(1.2), boundary="circular"), (1, 1, 2, 15, 11)),
    "blur-motion-horizontal": (lambda: parse("blur:motion:5:0"), (1, 1, 2, 13, 15)),
    "sr-box": (lambda: parse("sr:4"), (1, 3, 3, 16, 12)),
    "sr-bicubic": (lambda: parse("sr:2:bicubic"), (1, 2, 3, 14, 10)),
    "inpaint-shared": (lambda: parse("inpaint:0.5", seed=3), (2, 3, 4, 9, 7)),
    "inpaint-perframe": (lambda: parse("inpaint:0.4:perframe", seed=1), (1, 3, 5, 9, 7)),
    "id": (lambda: parse("id"), (1, 1, 3, 4, 5)),
    "avg7-reflect-deblur": (lambda: parse("tblur:uniform:7:reflect,blur:gauss:2"), (1, 3, 8, 24, 20)),
    "avg7-reflect-sr4": (lambda: parse("tblur:uniform:7:reflect,sr:4"), (1, 3, 8, 24, 20)),
    "circ7-sr4": (lambda: parse("tblur:uniform:7:circular,sr:4"), (1, 3, 8, 16, 16)),
    "tgauss-reflect-deblur-sr2": (lambda: parse("tblur:gauss:1:reflect,blur:gauss:1,sr:2"), (1, 2, 7, 18, 14)),
    "sr-then-tblur": (lambda: parse("sr:2,tblur:uniform:3:reflect"), (1, 2, 6, 10, 8)),
    "avg3-inpaint-shared": (lambda: parse("tblur:uniform:3:reflect,inpaint:0.5", seed=2), (1, 3, 6, 9, 7)),
    "fdrop-tblur-deblur": (lambda: parse("fdrop:2,tblur:uniform:3:reflect,blur:gauss:1"), (1, 2, 7, 9, 11)),
    "padded-grid": (lambda: pad_operator(parse("tblur:uniform:3:reflect,sr:2"), (1, 2, 5, 10, 14), 8)[0], (1, 2, 5, 16, 16)),
    "temporal-window": (lambda: window_operator(parse("tblur:uniform:5:reflect,blur:gauss:1"), range(3, 10), 16)[0], (1, 2, 7, 9, 8)),
}

UNSUPPORTED = {
    "perframe-mask-with-temporal-blur": (lambda: parse("tblur:uniform:7:reflect,inpaint:0.5:perframe"), (1, 3, 8, 16, 16)),
    "mask-with-sr": (lambda: parse("sr:2,inpaint:0.5"), (1, 3, 4, 16, 16)),
    "mask-with-blur": (lambda: parse("inpaint:0.5,blur:gauss:1"), (1, 3, 4, 16, 16)),
    "two-masks": (lambda: parse("inpaint:0.5,inpaint:0.3"), (1, 3, 4, 16, 16)),
    "non-separable-blur": (lambda: parse("blur:motion:5:30"), (1, 1, 3, 16, 16)),
}


def _cg_converged(op, rhs, gamma):
    return conjugate_gradient(lambda v: v + gamma * op.A_adjoint_A(v), rhs, None, max_iter=5000, tol=1e-15)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
@pytest.mark.parametrize("gamma", [0.3, 25.0])
def test_exact_solve_equals_converged_cg(name, gamma):
    make, shape = SUPPORTED[name]
    op = make().double()
    prox = prox_solver(op, shape)
    assert prox is not None, name
    g = torch.Generator().manual_seed(7)
    rhs = torch.randn(shape, dtype=F64, generator=g)
    v = prox(rhs, gamma)
    ref = _cg_converged(op, rhs, gamma)
    assert v.shape == rhs.shape
    assert float((v - ref).abs().max()) <= 1e-10 * float(ref.abs().max())
    # And v solves the system itself (residual at rounding level).
    res = v + gamma * op.A_adjoint_A(v) - rhs
    assert float(res.abs().max()) < 1e-11 * (1 + gamma)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_spectral_gram_equals_AtA(name):
    make, shape = SUPPORTED[name]
    op = make().double()
    prox = prox_solver(op, shape)
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    ref = op.A_adjoint_A(x)
    assert float((prox.gram(x) - ref).abs().max()) < 1e-12 * max(1.0, float(ref.abs().max()))
    # The eigenvalues are those of the dense A^T A (one channel; small problems only).
    _, _, t, h, w = shape
    n = t * h * w
    if n <= 1500:
        basis = torch.eye(n, dtype=F64).reshape(n, 1, t, h, w)
        dense = op.A_adjoint_A(basis).reshape(n, n)
        expected = torch.linalg.eigvalsh(dense)
        got = torch.sort(prox.lam.expand(t, h, w).flatten()).values
        assert torch.allclose(got, expected, atol=1e-12)
    assert float(prox.lam.min()) >= 0.0


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_operators_have_no_exact_solver(name):
    make, shape = UNSUPPORTED[name]
    assert prox_solver(make(), shape) is None


def test_unknown_operator_types_fall_back():
    class Negate(LinearOperator):
        spec = "neg"

        def A(self, x):  # noqa: N802
            return -x

        def A_adjoint(self, y):  # noqa: N802
            return -y

    assert prox_solver(Negate(), (1, 1, 2, 3, 3)) is None
    assert prox_solver(Composition([parse("tblur:uniform:3:reflect"), Negate()]), (1, 1, 4, 3, 3)) is None


def test_reflect_symmetric_temporal_blur_is_diagonal_in_the_dct_ii_basis():
    # Why the reflect boundary is exact: a symmetric kernel under half-sample symmetric extension
    # is diagonalised by the orthonormal DCT-II (Martucci 1994), with eigenvalues
    # sum_j w_j cos(pi k j / T) for tap offsets j. Checked on the benchmark's 7-frame average.
    T = 8
    op = parse("tblur:uniform:7:reflect")
    m = temporal_matrix(op, T)
    n = torch.arange(T, dtype=F64)
    k = n[:, None]
    c = torch.cos(math.pi * k * (n[None, :] + 0.5) / T) * math.sqrt(2.0 / T)
    c[0] /= math.sqrt(2.0)
    assert torch.allclose(c @ c.T, torch.eye(T, dtype=F64), atol=1e-14)
    d = c @ m @ c.T
    offdiag = d - torch.diag(torch.diagonal(d))
    assert float(offdiag.abs().max()) < 1e-14
    offsets = torch.arange(-3, 4, dtype=F64)
    expected = (torch.cos(math.pi * n[:, None] * offsets[None, :] / T) / 7).sum(1)
    assert torch.allclose(torch.diagonal(d), expected, atol=1e-14)
    # The replicate boundary is not: the same check fails there (the eigenbasis is still exact).
    m_rep = temporal_matrix(parse("tblur:uniform:7:replicate"), T)
    d_rep = c @ m_rep @ c.T
    assert float((d_rep - torch.diag(torch.diagonal(d_rep))).abs().max()) > 1e-3


def test_float32_solve_is_close_to_float64():
    make, shape = SUPPORTED["avg7-reflect-deblur"]
    op = make()
    prox = prox_solver(op, shape)
    rhs = torch.rand(shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    v64 = prox(rhs, 50.0)
    v32 = prox(rhs.float(), 50.0)
    assert v32.dtype == torch.float32
    assert float((v32.double() - v64).abs().max()) < 1e-5


def test_exact_solve_is_counted_as_two_applications():
    op = parse("tblur:uniform:7:reflect,sr:4")
    shape = (1, 3, 8, 16, 16)
    prox = prox_solver(op, shape)
    rhs = torch.rand(shape)
    with count_applications() as n:
        prox(rhs, 1.0)
        prox(rhs, 2.0)
        op.A_adjoint(op.A(rhs))
    assert (n.calls, n.exact_solves) == (6, 2)
    prox(rhs, 1.0)  # outside a counting block: no error, nothing counted


# ----------------------------------------------------------------------------- SVI data step


def _svi_problem(spec="tblur:uniform:3:reflect,blur:gauss:1", sigma_y=0.05, shape=(1, 3, 6, 16, 16)):
    from vidrestore.diffusion import GaussianPrior, alphas_cumprod, linear_betas

    prior = GaussianPrior(0.0, 0.5, alphas_cumprod(linear_betas()))
    prior.multiple = 8
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(shape, dtype=F64, generator=g)
    op = parse(spec, seed=0)
    y = op.A(x) + sigma_y * torch.randn(op.output_shape(shape), dtype=F64, generator=g)
    return prior, op, y


@pytest.mark.parametrize("spec", ["tblur:uniform:3:reflect,blur:gauss:1", "tblur:uniform:5:reflect,sr:4", "inpaint:0.5:perframe"])
def test_svi_exact_data_step_equals_cg_to_convergence(spec):
    from vidrestore.solvers import solve_svi

    prior, op, y = _svi_problem(spec)
    kw = dict(steps=4, eta=0.5, sigma_y=0.05, gamma=2.0, seed=1)
    steps = []
    exact = solve_svi(prior, op, y, data_step="exact", callback=lambda d: steps.append(d["x0_data"]), **kw)
    cg = solve_svi(prior, op, y, data_step="cg", cg_steps=2000, cg_tol=1e-15, **kw)
    assert len(steps) == 4
    assert float((exact - cg).abs().max()) < 1e-9
    # 'auto' takes the exact path for a supported operator.
    assert torch.equal(solve_svi(prior, op, y, data_step="auto", **kw), exact)


def test_svi_auto_falls_back_to_cg_and_cg_is_unchanged():
    from vidrestore.solvers import solve_svi

    prior, op, y = _svi_problem("tblur:uniform:3:reflect,inpaint:0.5:perframe")
    kw = dict(steps=3, eta=0.5, sigma_y=0.05, gamma=2.0, cg_steps=5, seed=1)
    cg = solve_svi(prior, op, y, **kw)  # default data step: cg
    assert torch.equal(solve_svi(prior, op, y, data_step="auto", **kw), cg)
    with pytest.raises(UserError, match="not available for operator"):
        solve_svi(prior, op, y, data_step="exact", **kw)
    # Noiseless data: the data step is early-stopped CG by design; 'auto' keeps it, 'exact' refuses.
    prior, op, y = _svi_problem(sigma_y=0.0)
    kw0 = dict(steps=3, eta=0.5, cg_steps=5, seed=1)
    assert torch.equal(solve_svi(prior, op, y, data_step="auto", **kw0), solve_svi(prior, op, y, **kw0))
    with pytest.raises(UserError, match="sigma_y > 0"):
        solve_svi(prior, op, y, data_step="exact", **kw0)


def test_svi_exact_counts_one_solve_per_step():
    from vidrestore.solvers import solve_svi

    prior, op, y = _svi_problem("tblur:uniform:5:reflect,sr:4")
    with count_applications() as n:
        solve_svi(prior, op, y, steps=5, sigma_y=0.05, data_step="exact", seed=0)
    # A^T y once, then one exact solve (2) per step: no CG products.
    assert (n.exact_solves, n.calls) == (5, 1 + 2 * 5)


def test_restore_and_cli_pass_data_step(tmp_path):
    from click.testing import CliRunner

    from vidrestore.cli.main import cli
    from vidrestore.ops import measure
    from vidrestore.workflows.jobs import restore_video
    from vidrestore.workflows.methods import SVIOptions

    assert SVIOptions().data_step == "cg"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 16, 16, generator=g)
    op = parse("tblur:uniform:3:reflect,sr:2", num_frames=8)
    y = measure(op, x, 0.05, torch.Generator().manual_seed(1))
    runs = {s: restore_video(y, op, method="svi", sigma_y=0.05, options={"steps": 2, "data_step": s}, quiet=True) for s in ("cg", "exact", "auto")}
    assert torch.equal(runs["exact"], runs["auto"])
    assert not torch.equal(runs["exact"], runs["cg"])  # 20 CG steps are close to, not at, the exact solve
    assert float((runs["exact"] - runs["cg"]).abs().max()) < 0.05
    # CLI: the flag reaches the solver; an unsupported operator with 'exact' is a one-line error.
    from vidrestore.io import write_video

    write_video(tmp_path / "clip.npz", x, 24.0)
    runner = CliRunner()
    r = runner.invoke(cli, ["degrade", str(tmp_path / "clip.npz"), "-o", str(tmp_path / "y.npz"), "--op", "tblur:uniform:3:reflect,sr:2", "--sigma-y", "0.05"])
    assert r.exit_code == 0, r.output
    base = ["restore", str(tmp_path / "y.npz"), "-m", "svi", "--steps", "2", "-q"]
    r = runner.invoke(cli, base + ["-o", str(tmp_path / "out.npz"), "--data-step", "exact"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, base + ["-o", str(tmp_path / "bad.npz"), "--data-step", "exact", "--op", "tblur:uniform:3:reflect,sr:2,inpaint:0.5:perframe"])
    assert r.exit_code == 2 and "not available for operator" in r.output and not (tmp_path / "bad.npz").exists()
    r = runner.invoke(cli, ["restore", str(tmp_path / "y.npz"), "-o", str(tmp_path / "bad.npz"), "-m", "cg", "--data-step", "exact", "-q"])
    assert r.exit_code == 2 and "--data-step" in r.output
