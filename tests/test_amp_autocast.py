"""lucid.autocast: each op's output dtype per the policy (lucid.amp.policy), on the CPU
and on the fake GPU; float32 gradients for float32 parameters; values against float32;
clear errors for float64 and bfloat16."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.amp import policy

F16, F32, F64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")


def rand(device, *shape, dtype="float32", grad=False):
    return lucid.randn(*shape, dtype=dtype, device=device, requires_grad=grad)


def labels(device, n, c):
    return lucid.tensor(np.arange(n) % c, device=device)


# op name -> (Function class, builder(device, dtype of the float inputs) -> output Tensor)
def _bn(d, dt):
    rm, rv = lucid.zeros(3, device=d), lucid.ones(3, device=d)
    return F.batch_norm(rand(d, 4, 3, 5, 5, dtype=dt), rm, rv, rand(d, 3), rand(d, 3), training=True)


OPS = {
    "conv2d": ("Conv2d", lambda d, dt: F.conv2d(rand(d, 2, 3, 6, 6, dtype=dt), rand(d, 4, 3, 3, 3), rand(d, 4), padding=1)),
    "linear": ("Linear", lambda d, dt: F.linear(rand(d, 5, 3, dtype=dt), rand(d, 4, 3), rand(d, 4))),
    "matmul": ("MatMul", lambda d, dt: lucid.matmul(rand(d, 5, 3, dtype=dt), rand(d, 3, 2))),
    "batch_norm": ("BatchNorm", _bn),
    "cross_entropy": ("CrossEntropy", lambda d, dt: F.cross_entropy(rand(d, 6, 4, dtype=dt), labels(d, 6, 4))),
    "softmax": ("Softmax", lambda d, dt: F.softmax(rand(d, 3, 4, dtype=dt), dim=1)),
    "log_softmax": ("LogSoftmax", lambda d, dt: F.log_softmax(rand(d, 3, 4, dtype=dt), dim=1)),
    "sum": ("Sum", lambda d, dt: rand(d, 3, 4, dtype=dt).sum()),
    "mean": ("Mean", lambda d, dt: rand(d, 3, 4, dtype=dt).mean(dim=1)),
    "var": ("Var", lambda d, dt: lucid.var(rand(d, 3, 4, dtype=dt), dim=0)),
    "exp": ("Exp", lambda d, dt: lucid.exp(rand(d, 3, dtype=dt))),
    "log": ("Log", lambda d, dt: lucid.log(lucid.exp(rand(d, 3, dtype=dt)))),
    "pow": ("Pow", lambda d, dt: lucid.pow(rand(d, 3, dtype=dt), 2.0)),
    "relu": ("ReLU", lambda d, dt: F.relu(rand(d, 3, 4, dtype=dt))),
    "max_pool2d": ("MaxPool2d", lambda d, dt: F.max_pool2d(rand(d, 1, 2, 4, 4, dtype=dt), 2)),
    "add_same": ("Add", lambda d, dt: rand(d, 3, dtype=dt) + rand(d, 3, dtype=dt)),
    "cast": ("Cast", lambda d, dt: rand(d, 3, dtype=dt).to("float64")),
    "clone": ("Clone", lambda d, dt: rand(d, 3, dtype=dt).to("float64").clone()),
    "to_device": ("ToDevice", lambda d, dt: lucid.ops.to_device(rand(d, 3, dtype=dt).to("float64"), "cpu")),
}
POLICY = {"Conv2d": policy.LOWER, "Linear": policy.LOWER, "MatMul": policy.LOWER,
          **{n: policy.KEEP for n in ("Cast", "Clone", "ToDevice")},
          **{n: policy.FLOAT32 for n in ("BatchNorm", "CrossEntropy", "Softmax", "LogSoftmax", "Sum", "Mean", "Var",
                                         "Exp", "Log", "Pow")},
          **{n: policy.PROMOTE for n in ("ReLU", "MaxPool2d", "Add")}}
# the output dtype under autocast(float16) for float32 and for float16 floating inputs
EXPECTED = {policy.LOWER: (F16, F16), policy.FLOAT32: (F32, F32), policy.PROMOTE: (F32, F16)}


def test_the_policy_table_names_every_listed_op():
    classes = {cls.__name__: cls for cls in policy.LOWER_PRECISION_OPS + policy.FLOAT32_OPS + policy.KEEP_OPS}
    assert {n for n, p in POLICY.items() if p != policy.PROMOTE} == set(classes)
    for name, want in POLICY.items():
        if name in classes:
            assert policy.policy_of(classes[name]) == want


@pytest.mark.parametrize("op", sorted(OPS))
def test_output_dtype_per_policy(op, device):
    name, build = OPS[op]
    expected = EXPECTED.get(POLICY[name])
    for k, in_dtype in enumerate(("float32", "float16")):
        with lucid.autocast("cpu" if device == "cpu" else "gpu"):
            out = build(device, in_dtype)
        if expected is None:  # KEEP: the conversions asked for
            assert out.dtype == F64
        else:
            assert out.dtype == expected[k], (op, in_dtype, out.dtype)
        assert out.device == (lucid.tensor(0.0, device=device).device if op != "to_device" else "cpu")


def test_outside_autocast_and_other_device_types_nothing_changes(device):
    x, w = rand(device, 5, 3), rand(device, 4, 3)
    assert F.linear(x, w).dtype == F32
    other = "gpu" if device == "cpu" else "cpu"
    with lucid.autocast(other):
        assert F.linear(x, w).dtype == F32
    kind = "cpu" if device == "cpu" else "gpu"
    with lucid.autocast(kind):
        assert lucid.amp.is_autocast_enabled(kind) and lucid.amp.get_autocast_dtype(kind) == F16
        with lucid.autocast(kind, enabled=False):
            assert F.linear(x, w).dtype == F32
            assert not lucid.amp.is_autocast_enabled(kind)
        assert F.linear(x, w).dtype == F16
    assert not lucid.amp.is_autocast_enabled(kind)

    @lucid.amp.autocast(kind)
    def decorated():
        return F.linear(x, w)

    assert decorated().dtype == F16 and F.linear(x, w).dtype == F32


def test_master_weights_get_float32_gradients_of_the_right_value(device):
    kind = "cpu" if device == "cpu" else "gpu"
    conv = nn.Conv2d(3, 4, 3, padding=1, device=device)
    bn = nn.BatchNorm2d(4, device=device)
    fc = nn.Linear(4, 5, device=device)
    x = rand(device, 4, 3, 6, 6)
    with lucid.autocast(kind):
        h = bn(conv(x))
        assert h.dtype == F32 and bn.running_mean.dtype == F32 and bn.running_var.dtype == F32
        logits = fc(F.adaptive_avg_pool2d(F.relu(h), 1).flatten(1))
        loss = F.cross_entropy(logits, labels(device, 4, 5))
    loss.backward()
    for p in (conv.weight, conv.bias, bn.weight, bn.bias, fc.weight, fc.bias):
        assert p.dtype == F32 and p.grad is not None and p.grad.dtype == F32
    # the linear layer's weight gradient: g^T a of the float16 activations, within float16 rounding
    a = lucid._backend.asnumpy(F.adaptive_avg_pool2d(F.relu(h), 1).flatten(1).data).astype(np.float16)
    p = np.exp(lucid._backend.asnumpy(logits.data).astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(4), np.arange(4) % 5] -= 1
    want = (p / 4).astype(np.float16).T @ a
    np.testing.assert_allclose(lucid._backend.asnumpy(fc.weight.grad.data), want.astype(np.float32), rtol=2e-2, atol=2e-3)


def test_values_close_to_float32():
    x, w = rand("cpu", 8, 16), rand("cpu", 12, 16)
    with lucid.autocast("cpu"):
        low = F.linear(x, w)
    np.testing.assert_allclose(low.data.astype(np.float32), F.linear(x, w).data, rtol=1e-2, atol=2e-2)
    assert not np.array_equal(low.data.astype(np.float32), F.linear(x, w).data)  # it did round


def test_float64_inputs_to_a_low_precision_op_are_an_error():
    x, w = rand("cpu", 5, 3, dtype="float64"), rand("cpu", 4, 3, dtype="float64")
    with lucid.autocast("cpu"), pytest.raises(TypeError, match="Linear got a float64 input.*float32 master weights"):
        F.linear(x, w)
    with lucid.autocast("cpu"):  # float32-policy ops leave float64 alone, as in PyTorch
        assert x.sum().dtype == F64


@pytest.mark.parametrize("dtype", ["bfloat16", "bf16"])
def test_bfloat16_without_an_array_library_dtype_is_an_error(dtype):
    with pytest.raises(TypeError, match=f"'{dtype}'.*numpy.*has no bfloat16 dtype"):
        lucid.autocast("cpu", dtype=dtype)


def test_bfloat16_on_the_fake_gpu_names_cupy(fake_gpu):
    with pytest.raises(TypeError, match="has no bfloat16 dtype"):
        lucid.autocast("gpu", dtype="bfloat16")


@pytest.mark.parametrize("dtype", ["float32", lucid.float64, "int8"])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match="must be float16 or bfloat16"):
        lucid.autocast("cpu", dtype=dtype)


def test_unknown_device_type():
    with pytest.raises(ValueError, match="device_type must be one of 'cpu', 'gpu', 'cuda', got 'tpu'"):
        lucid.autocast("tpu")
