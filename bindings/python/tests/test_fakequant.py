"""Fake quantization and calibration against a plain-numpy reference (bit-exact)."""

import numpy as np
import pytest

import mpq
from conftest import requires

pytestmark = requires("mpq_fq_tensor", "mpq_fq_kernels")

F = np.float32


def ref_code_range(bits, mode="symmetric", signed=True):
    if mode == "symmetric":
        if signed and bits == 1:
            return (-1, 1)  # the binary quantizer y = c * sign(x)
        return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def ref_params(lo, hi, bits, mode="symmetric", signed=True):
    """The header's table of scale / zero point, in the same float32/double precision."""
    qmin, qmax = ref_code_range(bits, mode, signed)
    lo, hi = F(lo), F(hi)
    if mode == "symmetric":
        c = max(abs(lo), abs(hi)) if signed else max(hi, F(0))
        s = F(c / F(qmax))  # for the binary quantizer qmax = 1: the scale is c
        return (s if s >= np.finfo(F).tiny else F(0)), 0
    l_, h_ = min(float(lo), 0.0), max(float(hi), 0.0)
    s = F((h_ - l_) / (qmax - qmin))
    if s < np.finfo(F).tiny:
        return F(0), 0
    z = int(np.clip(qmin - np.rint(l_ / float(s)), qmin, qmax))
    return s, z


def ref_fake_quant(x, bits, scale, zp=0, mode="symmetric", signed=True):
    """q = clamp(rint(x * inv_scale) + z, qmin, qmax); y = (q - z) * scale, all float32."""
    x = np.asarray(x, dtype=F)
    if bits == 32:
        return x.copy()
    scale = F(scale)
    if bits == 1 and mode == "symmetric" and signed:
        return (np.sign(x) * scale).astype(F)
    if scale == 0:
        return np.zeros_like(x)
    qmin, qmax = ref_code_range(bits, mode, signed)
    inv = F(F(1) / scale)
    q = np.clip(np.rint(x * inv) + F(zp), F(qmin), F(qmax)).astype(F)
    return ((q - F(zp)) * scale).astype(F)


@pytest.fixture
def data():
    rng = np.random.default_rng(1234)
    x = (rng.standard_normal(10007) * 0.7).astype(F)
    x[::97] = 0.0  # exact zeros must stay exact
    x[5] = 3.5     # an outlier
    return x


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8, 12, 16, 32])
@pytest.mark.parametrize("mode,signed", [("symmetric", True), ("symmetric", False),
                                         ("asymmetric", True), ("asymmetric", False)])
def test_tensor_matches_numpy(data, bits, mode, signed):
    x = data if signed or mode == "asymmetric" else np.abs(data)
    y, s, z = mpq.fake_quant_tensor(x, bits, mode=mode, signed=signed)
    lo, hi = float(x.min()), float(x.max())
    rs, rz = ref_params(lo, hi, bits, mode, signed) if bits != 32 else (F(1), 0)
    assert (F(s), z) == (rs, rz)
    assert (F(s), z) == mpq.params_from_range(lo, hi, bits, mode=mode, signed=signed)
    expected = ref_fake_quant(x, bits, s, z, mode, signed)
    assert np.array_equal(y, expected)
    if bits != 32:
        assert mpq.code_range(bits, mode=mode, signed=signed) == ref_code_range(bits, mode,
                                                                               signed)


def test_apply_with_given_scale_and_isa_paths(data):
    s = F(0.05)
    expected = ref_fake_quant(data, 6, s)
    for isa in ("scalar", mpq.fakequant.best_isa()):
        assert np.array_equal(mpq.fake_quant(data, 6, s, isa=isa), expected)


def test_per_kernel_matches_numpy():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((24, 8, 3, 3)).astype(F) * np.linspace(0.1, 2, 24, dtype=F)[:, None,
                                                                                         None, None]
    bits = rng.integers(2, 9, size=24)
    bits[3] = 32
    y, s, z = mpq.fake_quant_kernels(w, bits)
    for c in range(24):
        b = int(bits[c])
        if b != 32:
            rs, rz = ref_params(w[c].min(), w[c].max(), b)
            assert (s[c], z[c]) == (rs, rz), c
        assert np.array_equal(y[c], ref_fake_quant(w[c], b, s[c], z[c])), c
    lo, hi = mpq.calibrate_kernels(w, bits)  # symmetric: [-max|w|, max|w|]
    assert np.array_equal(hi, np.abs(w).reshape(24, -1).max(axis=1)) and np.array_equal(lo, -hi)
    lo, hi = mpq.calibrate_kernels(w, bits, mode="asymmetric")
    assert np.array_equal(lo, w.reshape(24, -1).min(axis=1))
    assert np.array_equal(hi, w.reshape(24, -1).max(axis=1))
    # Explicit scales, and the channel axis last (TensorFlow HWIO layout).
    hwio = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    y2 = mpq.fake_quant_kernels(hwio, bits, scale=s, axis=-1)
    assert np.array_equal(y2, np.ascontiguousarray(y.transpose(2, 3, 1, 0)))


def test_calibration_minmax_and_percentile(data):
    assert mpq.calibrate(data, 8) == (-3.5, 3.5)
    lo, hi = mpq.calibrate(data, 8, mode="asymmetric")
    assert (lo, hi) == (float(data.min()), float(data.max()))
    lo, hi = mpq.calibrate(data, 8, calib="percentile", percentile=99.0)
    ref = np.percentile(np.abs(data).astype(np.float64), 99.0)
    assert hi == pytest.approx(ref, rel=1e-6) and lo == -hi


def test_zero_copy_in_place(data):
    x = data.copy()
    expected = ref_fake_quant(x, 4, 0.1)
    y = mpq.fake_quant(x, 4, 0.1, out=x)
    assert y is x and np.array_equal(x, expected)
    view = np.empty(2 * x.size, dtype=F)[::2]
    with pytest.raises(mpq.DTypeError, match="not C-contiguous"):
        mpq.fake_quant(x, 4, 0.1, out=view)


def test_wrong_dtype_and_layout_are_refused(data):
    with pytest.raises(mpq.DTypeError, match="float64.*astype"):
        mpq.fake_quant(data.astype(np.float64), 4, 0.1)
    with pytest.raises(TypeError):
        mpq.fake_quant(list(data), 4, 0.1)
    with pytest.raises(mpq.DTypeError, match="C-contiguous"):
        mpq.fake_quant_tensor(np.zeros((8, 8), F).T[:, ::2], 4)
    with pytest.raises(mpq.InvalidArgumentError, match="bits"):
        mpq.fake_quant(data, 17, 0.1)
    bad = data.copy()
    bad[42] = np.nan
    with pytest.raises(mpq.InvalidArgumentError, match="42"):
        mpq.fake_quant_tensor(bad, 4)


def test_stochastic_rounding_is_seeded_and_unbiased():
    x = np.full(200000, 0.3, dtype=F)
    a = mpq.fake_quant(x, 4, 1.0, rounding="stochastic", seed=5)
    b = mpq.fake_quant(x, 4, 1.0, rounding="stochastic", seed=5)
    assert np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}
    assert a.mean() == pytest.approx(0.3, abs=0.005)


def test_integer_codes_round_trip(data):
    s = F(0.03)
    codes = mpq.quantize(data, 8, s, dtype=np.int8)
    assert codes.dtype == np.int8
    assert np.array_equal(mpq.dequantize(codes, s), ref_fake_quant(data, 8, s))
