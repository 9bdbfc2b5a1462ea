"""Operator catalogue: adjointness (float64), references, shapes, pseudo-inverse, errors."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from vidrestore import ops as O
from vidrestore.errors import UserError
from vidrestore.linalg import adjointness_error, power_method

SHAPE = (2, 3, 13, 16, 24)  # odd T catches boundary bugs

CATALOGUE = [
    "id",
    "tblur:uniform:7:circular",
    "tblur:uniform:7:reflect",
    "tblur:uniform:4:replicate",
    "tblur:uniform:13:circular",
    "tblur:gauss:1.5:circular",
    "tblur:gauss:1.5:reflect",
    "blur:gauss:2.0",
    "blur:gauss:1.0:3",
    "blur:motion:7:30",
    "sr:4",
    "sr:2:bicubic",
    "inpaint:0.5",
    "inpaint:0.3:perframe",
    "fdrop:3",
    "fdrop:2",
]


def _x(shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("spec", CATALOGUE)
def test_adjoint_dot_product(spec):
    op = O.parse(spec, seed=3, num_frames=SHAPE[2])
    err = adjointness_error(op.A, op.A_adjoint, SHAPE, generator=torch.Generator().manual_seed(1))
    assert err < 1e-10, (spec, err)


@pytest.mark.parametrize("seed", range(6))
def test_random_compositions_adjoint(seed):
    g = np.random.default_rng(seed)
    n = int(g.integers(2, 5))
    tokens = list(g.choice([s for s in CATALOGUE if not s.startswith("fdrop")], size=n))
    spec = ",".join(tokens)
    shape = (1, 2, 16, 16, 16)
    op = O.parse(spec, seed=seed, num_frames=16)
    op.check_input(shape)
    assert adjointness_error(op.A, op.A_adjoint, shape) < 1e-10, spec


@pytest.mark.parametrize("spec", CATALOGUE)
def test_adjoint_matches_vjp(spec):
    op = O.parse(spec, seed=3, num_frames=SHAPE[2])
    x = _x(SHAPE)
    y = torch.randn(op.output_shape(SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _, vjp = torch.func.vjp(op.A, x)
    torch.testing.assert_close(vjp(y)[0], op.A_adjoint(y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", CATALOGUE)
def test_shapes_and_T1(spec):
    op = O.parse(spec, seed=0, num_frames=SHAPE[2])
    assert tuple(op.A(_x(SHAPE)).shape) == op.output_shape(SHAPE)
    if not spec.startswith("tblur") or ":1:" in spec:
        shape1 = (1, 3, 1, 16, 24)
        op1 = O.parse(spec, seed=0, num_frames=1)
        assert tuple(op1.A(_x(shape1)).shape) == op1.check_input(shape1)


def test_pinv_on_range():
    for spec in ["sr:4", "tblur:uniform:7:circular,sr:2", "inpaint:0.5", "blur:gauss:0.6,fdrop:2"]:
        op = O.parse(spec, num_frames=13)
        x = _x(SHAPE)
        y = op.A(x)
        xd = op.A_dagger(y, max_iter=300, tol=1e-12)
        rel = (op.A(xd) - y).norm() / y.norm()
        assert rel < 1e-5, (spec, float(rel))


def test_norms():
    # Averaging operators are contractions with ||A|| = 1 (constant video is preserved).
    for spec in ["tblur:uniform:7:circular", "blur:gauss:2.0", "tblur:gauss:1.0:reflect"]:
        op = O.parse(spec)
        lam = power_method(op.A_adjoint_A, _x(SHAPE), max_iter=300, tol=1e-9)
        assert abs(lam - 1.0) < 1e-3, (spec, lam)
    # Box SR by f: A A^T = I / f^2.
    op = O.parse("sr:4")
    lam = power_method(op.A_adjoint_A, _x(SHAPE), max_iter=50)
    assert abs(lam - 1 / 16) < 1e-9


# ---------------------------------------------------------------- independent references


def test_temporal_uniform_circular_reference():
    x = _x(SHAPE)
    y = O.parse("tblur:uniform:7:circular").A(x)
    ref = ndi.uniform_filter1d(x.numpy(), 7, axis=2, mode="wrap")
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("boundary,mode", [("reflect", "reflect"), ("replicate", "nearest"), ("circular", "wrap")])
def test_temporal_gauss_reference(boundary, mode):
    x = _x(SHAPE)
    op = O.parse(f"tblur:gauss:1.5:{boundary}")
    w = O.gaussian_taps(1.5).numpy()
    assert len(w) == 2 * int(np.ceil(4.5)) + 1
    ref = ndi.correlate1d(x.numpy(), w, axis=2, mode=mode)
    np.testing.assert_allclose(op.A(x).numpy(), ref, atol=1e-12)


def test_temporal_uniform_even_reflect_reference():
    x = _x(SHAPE)
    op = O.parse("tblur:uniform:4:reflect")
    ref = ndi.correlate1d(x.numpy(), np.full(4, 0.25), axis=2, mode="reflect", origin=0)
    # scipy centres an even kernel at index K//2, as we do.
    np.testing.assert_allclose(op.A(x).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("spec", ["blur:gauss:2.0", "blur:motion:7:30", "blur:gauss:1.0:3"])
def test_spatial_blur_reference(spec):
    op = O.parse(spec)
    x = _x((1, 2, 2, 17, 23))
    k = op.kernel.numpy()
    ref = np.empty_like(x.numpy())
    for c in range(2):
        for t in range(2):
            ref[0, c, t] = ndi.convolve(x[0, c, t].numpy(), k, mode="reflect")
    np.testing.assert_allclose(op.A(x).numpy(), ref, atol=1e-12)


def test_motion_kernel_is_asymmetric_convolution():
    # A horizontal motion kernel at 0 deg has mass only on the middle row; at 90 deg on the middle column.
    k0 = O.motion_kernel(5, 0).numpy()
    k90 = O.motion_kernel(5, 90).numpy()
    c = k0.shape[0] // 2
    assert abs(k0[c].sum() - 1) < 1e-9
    assert abs(k90[:, c].sum() - 1) < 1e-9
    assert abs(k0.sum() - 1) < 1e-12


def test_gaussian_kernel_size_default():
    k = O.gaussian_kernel(2.0)
    assert k.shape == (13, 13) and abs(float(k.sum()) - 1) < 1e-12


def test_box_sr_reference():
    x = _x(SHAPE)
    y = O.parse("sr:4").A(x)
    ref = x.numpy().reshape(2, 3, 13, 4, 4, 6, 4).mean(axis=(4, 6))
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


def test_bicubic_sr_reference():
    x = _x((1, 3, 2, 16, 24))
    y = O.parse("sr:2:bicubic").A(x)
    frames = x[0].permute(1, 0, 2, 3)  # (T, C, H, W)
    ref = torch.nn.functional.interpolate(frames, size=(8, 12), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(y[0].permute(1, 0, 2, 3), ref, rtol=1e-9, atol=1e-9)


def test_inpaint_mask_fraction_and_determinism():
    op = O.parse("inpaint:0.5", seed=7)
    x = torch.ones((1, 3, 4, 64, 64), dtype=torch.float64)
    y = op.A(x)
    frac_missing = float((y == 0).double().mean())
    assert abs(frac_missing - 0.5) < 0.03
    # shared: same mask for all frames and channels
    assert torch.equal(y[0, 0, 0], y[0, 2, 3])
    assert torch.equal(y, O.parse("inpaint:0.5", seed=7).A(x))
    assert not torch.equal(y, O.parse("inpaint:0.5", seed=8).A(x))
    yp = O.parse("inpaint:0.5:perframe", seed=7).A(x)
    assert not torch.equal(yp[0, 0, 0], yp[0, 0, 1]) and torch.equal(yp[0, 0, 1], yp[0, 1, 1])


def test_fdrop_reference():
    x = _x(SHAPE)
    op = O.parse("fdrop:3", num_frames=13)
    np.testing.assert_array_equal(op.A(x).numpy(), x.numpy()[:, :, ::3])
    assert op.A_adjoint(op.A(x)).shape[2] == 13


def test_composition_order_is_left_to_right():
    x = _x((1, 3, 8, 16, 16))
    a = O.parse("tblur:uniform:3:circular,sr:2").A(x)
    b = O.parse("sr:2").A(O.parse("tblur:uniform:3:circular").A(x))
    torch.testing.assert_close(a, b)
    assert O.parse("tblur:uniform:3:circular,sr:2").spec == "tblur:uniform:3:circular,sr:2"


def test_float32_works():
    op = O.parse("tblur:uniform:7:circular,blur:gauss:1.0,sr:2:bicubic")
    y = op.A(_x(SHAPE, dtype=torch.float32))
    assert y.dtype == torch.float32


def test_measure_noise_seeded():
    op = O.parse("sr:2")
    x = _x(SHAPE, dtype=torch.float32)
    y1 = O.measure(op, x, 0.05, torch.Generator().manual_seed(1))
    y2 = O.measure(op, x, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)
    resid = (y1 - op.A(x)).std()
    assert abs(float(resid) - 0.05) < 0.005
    with pytest.raises(UserError):
        O.measure(op, x, -1.0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("tblr:uniform:7", "did you mean 'tblur'"),
        ("tblur:unifrm:7", "did you mean 'uniform'"),
        ("tblur:uniform:7:circlar", "did you mean 'circular'"),
        ("sr:x", "'sr:x'"),
        ("sr:4:bicubik", "did you mean 'bicubic'"),
        ("blur:gauss", "'blur:gauss'"),
        ("blur:gauss:2:4", "odd"),
        ("inpaint:1.5", "[0, 1)"),
        ("", "empty"),
        ("sr:4,,id", "empty token"),
        ("blur:kernel:/nonexistent.npy", "not found"),
    ],
)
def test_bad_specs(spec, needle):
    with pytest.raises(UserError) as e:
        O.parse(spec)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_shape_errors():
    with pytest.raises(UserError, match="does not divide"):
        O.parse("sr:4").check_input((1, 3, 8, 18, 16))
    with pytest.raises(UserError, match="at least 7 frames"):
        O.parse("tblur:uniform:7").check_input((1, 3, 5, 16, 16))


def test_kernel_file(tmp_path):
    k = np.zeros((3, 5))
    k[1, 1:4] = 1
    p = tmp_path / "k.npy"
    np.save(p, k)
    op = O.parse(f"blur:kernel:{p}")
    assert abs(float(op.kernel.sum()) - 1) < 1e-12
    np.save(tmp_path / "even.npy", np.ones((2, 2)))
    with pytest.raises(UserError, match="odd"):
        O.parse(f"blur:kernel:{tmp_path / 'even.npy'}")


def test_cg_does_not_blow_up_after_convergence():
    # A singular, well-conditioned-on-its-range system: CG must stay at the solution
    # when asked for far more iterations than it needs (tol = 0).
    from vidrestore.linalg import conjugate_gradient

    op = O.parse("inpaint:0.5", seed=1)
    x = _x(SHAPE)
    b = op.A_adjoint(op.A(x))
    sol = conjugate_gradient(op.A_adjoint_A, b, None, max_iter=300)
    assert torch.isfinite(sol).all()
    assert float((op.A(sol) - op.A(x)).abs().max()) < 1e-10


def test_rank_one_blur_runs_separably_with_the_same_values():
    """Gaussian (rank-one) kernels run as two 1-D passes; values and adjoint match the 2-D
    convolution to round-off, and non-separable kernels keep the 2-D path."""
    from vidrestore.ops import functional as Fn

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 21, 26, dtype=torch.float64, generator=g)
    y = torch.rand(1, 3, 4, 21, 26, dtype=torch.float64, generator=g)
    for spec, separable in (("blur:gauss:2", True), ("blur:gauss:0.8:3", True), ("blur:motion:7:30", False)):
        op = O.parse(spec)
        assert op._separable is separable
        for boundary in ("reflect", "replicate", "circular"):
            op.boundary = boundary
            torch.testing.assert_close(op.A(x), Fn.spatial_conv(x, op.kernel, boundary), rtol=0, atol=1e-13)
            torch.testing.assert_close(op.A_adjoint(y), Fn.spatial_conv_adjoint(y, op.kernel, boundary), rtol=0, atol=1e-13)
            assert abs(float((op.A(x) * y).sum() - (x * op.A_adjoint(y)).sum())) < 1e-10
    assert Fn.separable_factors(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) is None
