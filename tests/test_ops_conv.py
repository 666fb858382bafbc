"""conv2d: values against closed forms and a naive loop reference, gradients, layouts, bad input."""
import numpy as np
import pytest
from ops_arrays import host, naive_conv2d, tensor

import lucid
import lucid.ops as F
from lucid.autograd import gradcheck
from lucid.ops import blocked, im2col
from lucid.ops.layout import is_channels_last

# (x shape, w shape, stride, padding, dilation, groups)
CASES = {
    "3x3 pad1": ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, 1, 1),
    "groups2 stride2 dil2 pad1": ((2, 4, 7, 8), (6, 2, 3, 3), 2, 1, 2, 2),
    "3x3 valid stride2": ((2, 3, 7, 6), (4, 3, 3, 3), 2, 0, 1, 1),
    "2x2 valid": ((2, 3, 5, 6), (2, 3, 2, 2), 1, 0, 1, 1),
    "1x1": ((2, 5, 4, 3), (3, 5, 1, 1), 1, 0, 1, 1),
    "1x1 stride2": ((2, 5, 5, 4), (3, 5, 1, 1), 2, 0, 1, 1),
    "1x1 pad1": ((1, 2, 3, 3), (3, 2, 1, 1), 1, 1, 1, 1),
    "rect kernel, pair args": ((2, 3, 7, 6), (2, 3, 3, 2), (2, 1), (1, 0), (1, 2), 1),
    "cardinality groups (ResNeXt)": ((1, 8, 5, 5), (8, 2, 3, 3), 1, 1, 1, 4),
    "depthwise stride2": ((2, 4, 6, 6), (4, 1, 3, 3), 2, 1, 1, 4),
    "pad > kernel extent": ((1, 2, 4, 3), (2, 2, 2, 2), 1, 2, 1, 1),
    "7x7 stride2 pad3 stem": ((1, 3, 9, 9), (4, 3, 7, 7), 2, 3, 1, 1),
}


def _pairs(stride, padding, dilation):
    p = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return p(stride), p(padding), p(dilation)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw-memory", "nhwc-memory"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_forward_matches_naive_reference(case, channels_last, device):
    xs, ws, stride, padding, dilation, groups = CASES[case]
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y = F.conv2d(tensor(x, device, channels_last=channels_last), tensor(w, device), tensor(b, device), stride, padding, dilation, groups)
    expected = naive_conv2d(x, w, b, *_pairs(stride, padding, dilation), groups)
    assert y.shape == expected.shape
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    assert is_channels_last(y.data)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_gradients(case, device):
    xs, ws, stride, padding, dilation, groups = CASES[case]
    rng = np.random.default_rng(2)
    x = tensor(rng.standard_normal(xs), device, grad=True)
    w = tensor(rng.standard_normal(ws), device, grad=True)
    b = tensor(rng.standard_normal(ws[0]), device, grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), [x, w, b])


def test_gradients_with_channels_last_input_and_same_padding(device):
    rng = np.random.default_rng(3)
    x = tensor(rng.standard_normal((2, 4, 5, 6)), device, grad=True, channels_last=True)
    w = tensor(rng.standard_normal((4, 2, 2, 3)), device, grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same", dilation=(2, 1), groups=2), [x, w])
    y = F.conv2d(x, w, padding="same", dilation=(2, 1), groups=2)
    assert y.shape == (2, 4, 5, 6)


def test_identity_kernel_returns_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 4))
    w = np.zeros((3, 3, 3, 3))
    for c in range(3):
        w[c, c, 1, 1] = 1.0
    y = F.conv2d(tensor(x), tensor(w), padding=1)
    np.testing.assert_array_equal(host(y), x)


def test_hand_computed_case():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = F.conv2d(tensor(x), tensor(w), tensor(np.array([0.5])))
    # top-left: 1*1 + 2*2 + 4*3 + 5*4 = 37, then 47, 67, 77 (+0.5 bias)
    np.testing.assert_array_equal(host(y), [[[[37.5, 47.5], [67.5, 77.5]]]])
    y2 = F.conv2d(tensor(x), tensor(w), stride=2, padding=1)
    # windows start at (-1,-1), (-1,1), (1,-1), (1,1): taps reading padding count 0
    np.testing.assert_array_equal(host(y2), [[[[4 * 1, 3 * 2 + 4 * 3], [2 * 4 + 4 * 7, 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9]]]])


def test_batch_chunking_and_threads_give_the_same_result(monkeypatch):
    """One-image column chunks, or images copied on several threads, match one big chunk."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 6, 5))
    results = []
    for chunk, block in ((1 << 30, 1 << 30), (1, 1 << 30), (1 << 30, 1)):
        monkeypatch.setattr(im2col, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(blocked, "BLOCK_BYTES", block)
        outs = []
        for stride in (1, 2):
            for groups, padding in ((2, 1), (1, 1), (1, 0)):
                w = np.random.default_rng(6).standard_normal((4, 4 // groups, 3, 3))
                xt, wt = tensor(x, grad=True), tensor(w, grad=True)
                y = F.conv2d(xt, wt, stride=stride, padding=padding, groups=groups)
                y.backward(lucid.Tensor(np.random.default_rng(7).standard_normal(y.shape)))
                outs += [host(y), host(xt.grad), host(wt.grad)]
        results.append(outs)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups, cg", [(1, 4), (2, 4), (2, 2), (3, 3)])
def test_float32_stays_float32(groups, cg):
    """float32 in, float32 out (channel runs of 16 and 8 bytes take the wide-copy path)."""
    rng = np.random.default_rng(6)
    x32 = rng.standard_normal((2, groups * cg, 5, 5)).astype(np.float32)
    w32 = rng.standard_normal((4 * groups, cg, 3, 3)).astype(np.float32)
    x, w = lucid.Tensor(x32, requires_grad=True), lucid.Tensor(w32, requires_grad=True)
    b = lucid.Tensor(np.zeros(4 * groups, np.float32), requires_grad=True)
    for stride in (1, 2):
        y = F.conv2d(x, w, b, stride=stride, padding=1, groups=groups)
        ref = naive_conv2d(x32.astype(np.float64), w32.astype(np.float64), None, (stride, stride), (1, 1), (1, 1), groups)
        np.testing.assert_allclose(host(y), ref, rtol=1e-4, atol=1e-4)
        y.sum().backward()
        assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


@pytest.mark.parametrize(
    "xs, ws, kwargs, message",
    [
        ((1, 3, 5, 5), (4, 2, 3, 3), {},
         r"input of shape \(1, 3, 5, 5\) has 3 channels but weight of shape \(4, 2, 3, 3\) with groups=1 expects 2"),
        ((1, 4, 5, 5), (4, 4, 3, 3), {"groups": 2}, r"\(1, 4, 5, 5\).*\(4, 4, 3, 3\) with groups=2 expects 8"),
        ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, r"3 output channels, not divisible by groups=2"),
        ((1, 4, 5, 5), (4, 4, 3, 3), {"groups": 0}, r"groups must be a positive int"),
        ((1, 2, 2, 2), (2, 2, 5, 5), {"padding": 1}, r"kernel of size \(5, 5\).*larger than the padded input of size \(4, 4\)"),
        ((1, 2, 4, 4), (2, 2, 3, 3), {"dilation": 2}, r"dilated extent \(5, 5\)"),
        ((2, 5, 5), (4, 2, 3, 3), {}, r"expected 4-D input \(N, C, H, W\), got 3-D input of shape \(2, 5, 5\)"),
        ((1, 2, 5, 5), (2, 2, 3, 3), {"stride": 0}, r"stride \(0, 0\).*must be positive"),
        ((1, 2, 5, 5), (2, 2, 3, 3), {"padding": "same", "stride": 2}, r"padding='same' needs stride 1"),
    ],
)
def test_bad_input(xs, ws, kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.conv2d(lucid.zeros(*xs), lucid.zeros(*ws), **kwargs)


def test_bias_shape_mismatch():
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) does not match weight of shape \(4, 2, 3, 3\)"):
        F.conv2d(lucid.zeros(1, 2, 5, 5), lucid.zeros(4, 2, 3, 3), lucid.zeros(3))


def test_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for xs, ws, stride, padding, dilation, groups in CASES.values():
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        g = None
        xt, wt, bt = tensor(x, grad=True), tensor(w, grad=True), tensor(b, grad=True)
        y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
        g = rng.standard_normal(y.shape)
        y.backward(lucid.Tensor(g))
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
        ty.backward(torch.tensor(g))
        for mine, ref in ((y.data, ty), (xt.grad.data, tx.grad), (wt.grad.data, tw.grad), (bt.grad.data, tb.grad)):
            np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-10, atol=1e-10)
