"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: PyTorch's window rules, values, gradients, bad input."""
import math

import numpy as np
import pytest
from ops_arrays import host, tensor

import lucid
import lucid.ops as F
from lucid.autograd import gradcheck
from lucid.ops.layout import is_channels_last


def out_len(n, k, s, p, d, ceil):
    """PyTorch's pooling output size, written out independently of lucid.ops.window."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def naive_pool(x, k, s, p, d, ceil, mode, count_include_pad=True, divisor=None):
    """Loop reference of PyTorch's max/avg pooling on an NCHW float64 array."""
    n, c, h, w = x.shape
    ho, wo = out_len(h, k, s, p, d, ceil), out_len(w, k, s, p, d, ceil)
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            rows = [i * s - p + a * d for a in range(k)]
            cols = [j * s - p + b * d for b in range(k)]
            inside = [(r, q) for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            vals = np.stack([x[:, :, r, q] for r, q in inside], axis=-1)
            if mode == "max":
                out[:, :, i, j] = vals.max(axis=-1)
                continue
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            if divisor is not None:
                div = divisor
            elif count_include_pad:
                div = (he - hs) * (we - ws)
            else:
                div = len(inside)
            out[:, :, i, j] = vals.sum(axis=-1) / div
    return out


MAX_CASES = [  # kernel, stride, padding, dilation, ceil_mode
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 2, 0, 1, True),
    (3, 3, 1, 2, True),
    (2, 1, 1, 1, False),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw-memory", "nhwc-memory"])
@pytest.mark.parametrize("k, s, p, d, ceil", MAX_CASES)
def test_max_pool_values_and_grad(k, s, p, d, ceil, channels_last, device):
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.1  # distinct values: unique maxima
    y = F.max_pool2d(tensor(x, device, channels_last=channels_last), k, s, p, d, ceil)
    np.testing.assert_array_equal(host(y), naive_pool(x, k, s, p, d, ceil, "max"))
    assert is_channels_last(y.data)
    xt = tensor(x, device, grad=True, channels_last=channels_last)
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil), [xt])


def test_max_pool_ties_route_gradient_to_first_max():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = 5.0  # window (0,0) holds two maxima: (0,1) comes first
    xt = tensor(x, grad=True)
    y = F.max_pool2d(xt, 2)  # non-overlapping 2x2 windows; three windows are all zeros
    y.backward(lucid.Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]])))
    expected = np.zeros((4, 4))
    expected[0, 1] = 1.0  # first max of window (0,0)
    expected[0, 2] = 2.0  # all-zero windows: their first element
    expected[2, 0] = 3.0
    expected[2, 2] = 4.0
    np.testing.assert_array_equal(host(xt.grad)[0, 0], expected)


def test_max_pool_overlapping_windows_accumulate():
    x = np.array([[[[1.0, 9.0, 2.0, 3.0]]]])
    xt = tensor(x, grad=True)
    y = F.max_pool2d(xt, (1, 2), stride=1)  # windows [1,9] [9,2] [2,3]
    np.testing.assert_array_equal(host(y), [[[[9.0, 9.0, 3.0]]]])
    y.sum().backward()
    np.testing.assert_array_equal(host(xt.grad), [[[[0.0, 2.0, 0.0, 1.0]]]])


AVG_CASES = [  # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    (3, 2, 1, False, True, None),
    (3, 2, 1, True, True, None),
    (3, 2, 1, True, False, None),
    (2, 3, 1, True, False, None),
    (3, 2, 1, False, False, 4),
    (2, 2, 0, False, True, None),
]


@pytest.mark.parametrize("k, s, p, ceil, cip, div", AVG_CASES)
def test_avg_pool_values_and_grad(k, s, p, ceil, cip, div, device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 8))
    y = F.avg_pool2d(tensor(x, device), k, s, p, ceil, cip, div)
    np.testing.assert_allclose(host(y), naive_pool(x, k, s, p, 1, ceil, "avg", cip, div), rtol=1e-12, atol=1e-14)
    xt = tensor(x, device, grad=True, channels_last=True)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, cip, div), [xt])


def test_avg_pool_hand_computed_ceil_and_padding():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    # ceil_mode keeps a last partial window; it holds only x[2, 2] = 9
    y = F.avg_pool2d(tensor(x), 2, ceil_mode=True)
    np.testing.assert_array_equal(host(y), [[[[3.0, 4.5], [7.5, 9.0]]]])
    # padding 1, count_include_pad: the corner window (-1..0, -1..0) holds 1 of 4 values
    y = F.avg_pool2d(tensor(x), 2, stride=2, padding=1, count_include_pad=True)
    np.testing.assert_array_equal(host(y), [[[[1 / 4, (2 + 3) / 4], [(4 + 7) / 4, (5 + 6 + 8 + 9) / 4]]]])
    y = F.avg_pool2d(tensor(x), 2, stride=2, padding=1, count_include_pad=False)
    np.testing.assert_array_equal(host(y), [[[[1.0, 2.5], [5.5, 7.0]]]])


@pytest.mark.parametrize(
    "n, k, s, p, ceil, expected",
    [
        (5, 2, 2, 1, True, 3),  # a 4th window would start in the right padding: dropped
        (5, 2, 2, 0, True, 3),  # partial last window starting inside the input: kept
        (5, 2, 2, 0, False, 2),
        (6, 3, 2, 1, True, 4),
        (6, 3, 2, 1, False, 3),
        (7, 3, 2, 1, True, 4),
    ],
)
def test_ceil_mode_output_size(n, k, s, p, ceil, expected):
    assert out_len(n, k, s, p, 1, ceil) == expected
    assert F.max_pool2d(lucid.zeros(1, 1, n, n), k, s, p, ceil_mode=ceil).shape == (1, 1, expected, expected)
    assert F.avg_pool2d(lucid.zeros(1, 1, n, n), k, s, p, ceil_mode=ceil).shape == (1, 1, expected, expected)


def naive_adaptive(x, oh, ow):
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("size, out", [((7, 7), 1), ((8, 6), (4, 3)), ((7, 5), (3, 2)), ((5, 6), (None, 4)), ((3, 4), (5, 6))])
def test_adaptive_avg_pool(size, out, device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3) + size)
    y = F.adaptive_avg_pool2d(tensor(x, device), out)
    oh, ow = out if isinstance(out, tuple) else (out, out)
    oh, ow = oh or size[0], ow or size[1]
    np.testing.assert_allclose(host(y), naive_adaptive(x, oh, ow), rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, out), [tensor(x, device, grad=True, channels_last=True)])


def test_global_pool_gradient_is_mean():
    x = tensor(np.ones((2, 3, 4, 5)), grad=True)
    F.adaptive_avg_pool2d(x, 1).sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.full((2, 3, 4, 5), 1 / 20))


def test_float32_stays_float32():
    x = lucid.Tensor(np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    y = F.max_pool2d(x, 3, 2, 1) + F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) + F.adaptive_avg_pool2d(x, 3)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: F.max_pool2d(x, 2, padding=2), r"max_pool2d: padding \(2, 2\) must be at most half"),
        (lambda x: F.avg_pool2d(x, 3, padding=2), r"avg_pool2d: padding \(2, 2\) must be at most half"),
        (lambda x: F.max_pool2d(x[0], 2), r"max_pool2d: expected 4-D input.*got 3-D input of shape \(2, 5, 5\)"),
        (lambda x: F.adaptive_avg_pool2d(x[0], 2), r"adaptive_avg_pool2d: expected 4-D"),
        (lambda x: F.max_pool2d(x, 7), r"too small"),
        (lambda x: F.max_pool2d(x, 0), r"must be positive"),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=0), r"divisor_override must not be zero"),
        (lambda x: F.max_pool2d(x, (2, 2, 2)), r"kernel_size must be an int or a pair"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(lucid.zeros(1, 2, 5, 5))


def test_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(4)
    x = np.maximum(np.round(rng.standard_normal((2, 3, 9, 8))), 0)  # many ties, as after a ReLU
    calls = [(lambda m, t, a=case: m.max_pool2d(t, *a)) for case in MAX_CASES]
    calls += [(lambda m, t, a=case: m.avg_pool2d(t, *a)) for case in AVG_CASES]
    calls += [(lambda m, t: m.adaptive_avg_pool2d(t, (4, 3)))]
    for call in calls:
        xt = tensor(x, grad=True)
        y = call(F, xt)
        g = rng.standard_normal(y.shape)
        y.backward(lucid.Tensor(g))
        tx = torch.tensor(x, requires_grad=True)
        ty = call(tf, tx)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(xt.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_image_blocks_on_threads(monkeypatch, mode):
    """One image per block, blocks shared among threads: same values and gradients."""
    from lucid.ops import blocked

    rng = np.random.default_rng(5)
    x = np.maximum(np.round(rng.standard_normal((5, 3, 7, 6))), 0)  # ties included
    g = rng.standard_normal((5, 3, 4, 3))
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    results = []
    for block_bytes in (1 << 30, 1):
        monkeypatch.setattr(blocked, "BLOCK_BYTES", block_bytes)
        xt = tensor(x, grad=True)
        y = pool(xt, 3, 2, 1)
        y.backward(lucid.Tensor(g))
        results.append((host(y), host(xt.grad)))
    np.testing.assert_allclose(results[0][0], naive_pool(x, 3, 2, 1, 1, False, mode), rtol=1e-12, atol=1e-14)
    for one, many in zip(*results):
        np.testing.assert_array_equal(many, one)
