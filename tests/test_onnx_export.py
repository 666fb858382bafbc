"""lucid.onnx.export checked by onnxruntime: every model factory, the op converters, bad input."""
import io

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models import create_model, list_models
from lucid.onnx import UnsupportedOperatorError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def calibrate(model, x):
    """Running statistics := the statistics of the test inputs, so eval-mode activations stay
    normalised through deep random-init nets (as in a trained model) and logits are well conditioned."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    model.train()
    with lucid.no_grad():
        model(x)
    for m in bns:
        m.momentum = 0.1
    model.eval()


def run_onnx(proto_or_bytes, *inputs, names=("input",)):
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) else proto_or_bytes.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, inputs)))


def lucid_eval(model, x):
    model.eval()
    with lucid.no_grad():
        return model(lucid.tensor(x)).numpy()


def assert_logits_match(got, ref):
    """1e-4 relative to the logits' scale."""
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def check_factory(name, size, residual_scale=1.0, **overrides):
    rng = np.random.default_rng(0)
    model = create_model(name, num_classes=5, **overrides)
    for block in model.modules():  # < 1: damped residual branches, as in trained deep nets
        if hasattr(block, "zero_init_last"):
            getattr(block, block.last_norm).weight.data *= residual_scale
    x1, x3 = (rng.standard_normal((n, 3, size, size)).astype(np.float32) for n in (1, 3))
    calibrate(model, lucid.tensor(np.concatenate([x1, x3])))
    buf = io.BytesIO()
    lucid.onnx.export(model, lucid.tensor(x1), buf)
    proto = onnx.load_from_string(buf.getvalue())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, size, size]
    for x in (x1, x3):  # one file, two batch sizes
        (got,) = run_onnx(buf.getvalue(), x)
        ref = lucid_eval(model, x)
        assert got.shape == ref.shape == (len(x), 5)
        assert_logits_match(got, ref)
    return proto


SHALLOW = {"layers": [1, 1, 1, 1], "channels": [32, 64, 128, 256]}
FACTORIES = [n for n in list_models() if n != "d2l_resnet_18"]


@pytest.mark.parametrize("name", FACTORIES)
def test_every_factory_shallow(name):
    """Each factory's own block, stem, groups, radix, base width and avd, at one narrow block per stage
    (every op the full-depth model uses; the full-depth models run in the slow test below)."""
    proto = check_factory(name, 32, **SHALLOW)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Gemm"} <= ops
    if name.startswith("resnest"):
        radix = 1 if name == "resnest_50_1s4x24d" else 2
        assert {"Mul", "AveragePool", "GlobalAveragePool"} <= ops
        assert ("Sigmoid" in ops) == (radix == 1)
        assert ({"Softmax", "Slice", "Reshape", "Transpose"} <= ops) == (radix > 1)


@pytest.mark.parametrize("name", ["resnet_50", "resnest_14"])
def test_models_with_another_activation(name):
    """act_layer="silu": BatchNormAct2d runs BatchNormalization then x * sigmoid(x), the joins Add then SiLU."""
    proto = check_factory(name, 32, act_layer="silu", **SHALLOW)
    ops = {n.op_type for n in proto.graph.node}
    assert {"BatchNormalization", "Sigmoid", "Mul", "Add"} <= ops and "Relu" not in ops


@pytest.mark.parametrize("name", ["resnet_18", "resnest_14", "d2l_resnet_18"])
def test_full_depth_factories(name):
    proto = check_factory(name, 32)
    ops = {n.op_type for n in proto.graph.node}
    assert "MaxPool" in ops


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_factory_full_depth(name):
    """At random init, 100-270-layer nets amplify float32 rounding past 1e-4 in lucid itself
    (resnest_200: lucid float32 vs float64 differ by 2% of the logits' scale), so residual
    branches are damped here."""
    check_factory(name, 64, residual_scale=0.1)


class Mixed(nn.Module):
    """The ops that no factory uses, each with the batch axis to follow."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.register_buffer("offset", lucid.tensor(np.linspace(-1, 1, 4).astype(np.float32)))

    def forward(self, x):  # x: (N, 2, 6, 6)
        y = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)  # (N, 2, 3, 3)
        y = F.max_pool2d(y, 2, 1, ceil_mode=True)  # (N, 2, 3, 3)
        z = self.fc(x)  # 4-D linear: MatMul + Add, (N, 2, 6, 4)
        z = (z - self.offset) / 2.0 * z.tanh() + z.exp().sqrt() - (-z).abs() ** 2
        z = z.permute(0, 3, 1, 2)[:, 1:3, ..., ::2]  # (N, 2, 2, 3)
        z = lucid.cat([z, lucid.stack([y[:, 0, :2], y[:, 1, :2]], dim=1)], dim=3)  # (N, 2, 2, 6)
        z = F.pad(z, (1, 1)).clip(-3.0, 3.0)  # (N, 2, 2, 8)
        s = z.sum(dim=(2, 3), keepdim=True) + z.mean(dim=3).unsqueeze(3) * lucid.maximum(z, lucid.minimum(z, 0.5))
        s = s.expand(-1, 2, 2, 8).reshape(-1, 2, 16)
        return F.softmax(s, dim=2) + F.log_softmax(s, dim=1) + F.sigmoid(s) + F.relu(s) + s[:, 0, :].unsqueeze(1)


@pytest.mark.parametrize("opset", [17, 18])
def test_op_converters(opset):
    model = Mixed()
    rng = np.random.default_rng(1)
    proto = lucid.onnx.export(model, lucid.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32)), io.BytesIO(),
                              opset_version=opset)
    for batch in (1, 4):
        x = rng.standard_normal((batch, 2, 6, 6)).astype(np.float32)
        (got,) = run_onnx(proto, x)
        assert_logits_match(got, lucid_eval(model, x))


def test_file_path_names_and_tuple_args(tmp_path):
    class Two(nn.Module):
        def forward(self, a, b):
            return a * b, a + b

    path = tmp_path / "two.onnx"
    a, b = (lucid.tensor(np.full((1, 3), v, np.float32)) for v in (2.0, 5.0))
    lucid.onnx.export(Two(), (a, b), str(path), input_names=["a", "b"], output_names=["prod", "total"])
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["a", "b"] and [o.name for o in proto.graph.output] == ["prod", "total"]
    prod, total = run_onnx(proto, np.ones((2, 3), np.float32) * 3, np.ones((2, 3), np.float32), names=("a", "b"))
    np.testing.assert_array_equal(prod, np.full((2, 3), 3.0))
    np.testing.assert_array_equal(total, np.full((2, 3), 4.0))


def test_training_flags_restored_and_weights_named():
    model = create_model("resnet_18", num_classes=3, layers=[1, 1, 1, 1])
    model.train()
    proto = lucid.onnx.export(model, lucid.zeros(1, 3, 32, 32), io.BytesIO())
    assert all(m.training for m in model.modules())
    names = {i.name for i in proto.graph.initializer}
    assert {"stem.conv1.weight", "stem.bn1.running_var", "fc.weight", "fc.bias"} <= names
    fc = next(i for i in proto.graph.initializer if i.name == "fc.weight")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(fc), model.fc.weight.detach().numpy())


def test_opset_too_old_names_op_and_opset():
    model = create_model("resnest_14", num_classes=3, layers=[1, 1, 1, 1])
    with pytest.raises(UnsupportedOperatorError, match=r"Softmax.*opset_version >= 13.*opset_version=12"):
        lucid.onnx.export(model, lucid.zeros(1, 3, 32, 32), io.BytesIO(), opset_version=12)
    with pytest.raises(UnsupportedOperatorError, match=r"MaxPool.*opset_version >= 10.*opset_version=9"):
        lucid.onnx.export(create_model("resnet_18", num_classes=3), lucid.zeros(1, 3, 32, 32), io.BytesIO(),
                          opset_version=9)
    with pytest.raises(ValueError, match=r"opset_version must be an int in \[9, \d+\].*got 5"):
        lucid.onnx.export(model, lucid.zeros(1, 3, 32, 32), io.BytesIO(), opset_version=5)


def test_unexportable_ops_are_errors():
    class Variance(nn.Module):
        def forward(self, x):
            return x.var(dim=1)

    with pytest.raises(UnsupportedOperatorError, match="lucid op Var has no ONNX converter"):
        lucid.onnx.export(Variance(), lucid.zeros(2, 3), io.BytesIO())

    class MergeBatch(nn.Module):
        def forward(self, x):
            return x.reshape(-1)

    with pytest.raises(UnsupportedOperatorError, match="Reshape.*batch axis.*dynamic_batch=False"):
        lucid.onnx.export(MergeBatch(), lucid.zeros(2, 3), io.BytesIO())
    proto = lucid.onnx.export(MergeBatch(), lucid.zeros(2, 3), io.BytesIO(), dynamic_batch=False)
    (got,) = run_onnx(proto, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(got, np.arange(6))
    with pytest.raises(TypeError, match=r"args\[0\] must be a lucid Tensor"):
        lucid.onnx.export(MergeBatch(), np.zeros((2, 3)), io.BytesIO())
