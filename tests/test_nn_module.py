"""Module API: registration, naming, recursion, hooks, modes, to(), repr, state_dict."""
from collections import OrderedDict

import numpy as np
import pytest

import lucid
from lucid import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(lucid.ones(4))
        self.register_buffer("count", lucid.zeros(()))
        self.register_buffer("cache", lucid.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Block()
        self.b = nn.Sequential(nn.Linear(4, 2), nn.ReLU())
        self.head_bias = nn.Parameter(lucid.zeros(2))

    def forward(self, x):
        return self.b(self.a(x)) + self.head_bias


def test_parameter_is_tensor_requiring_grad_and_shares_data():
    t = lucid.ones(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, lucid.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(t, requires_grad=False).requires_grad


def test_named_parameters_buffers_and_modules_in_registration_order():
    net = Net()
    # own parameters come before children's, children in assignment order (PyTorch)
    assert [n for n, _ in net.named_parameters()] == [
        "head_bias", "a.scale", "a.fc.weight", "a.fc.bias", "b.0.weight", "b.0.bias",
    ]
    assert [n for n, _ in net.a.named_parameters()] == ["scale", "fc.weight", "fc.bias"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["head_bias"]
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.head_bias"
    assert [n for n, _ in net.named_buffers()] == ["a.count", "a.cache"]
    assert [n for n, _ in net.named_modules()] == ["", "a", "a.fc", "b", "b.0", "b.1"]
    assert [n for n, _ in net.named_children()] == ["a", "b"]
    assert [type(m).__name__ for m in net.children()] == ["Block", "Sequential"]
    assert len(list(net.modules())) == 6
    assert net.get_submodule("b.0") is net.b[0]


def test_shared_parameter_and_module_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0"]
    assert [n for n, _ in seq.named_parameters(remove_duplicate=False)] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    # state_dict lists a shared module under each name, as PyTorch does
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_registration_rules():
    m = nn.Module()
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", lucid.ones(2))
    m.w = nn.Parameter(lucid.ones(2))
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = lucid.ones(2)
    m.w = None
    assert m.w is None and "w" in m._parameters
    with pytest.raises(KeyError, match="'.'"):
        m.register_buffer("a.b", lucid.ones(1))
    m.other = 3
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("other", lucid.ones(1))
    m.register_buffer("buf", lucid.ones(2))
    with pytest.raises(TypeError, match="buffer 'buf'"):
        m.buf = 3
    m.add_module("child", nn.ReLU())
    del m.child
    assert "child" not in m._modules
    with pytest.raises(AttributeError, match="no attribute 'child'"):
        _ = m.child

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(lucid.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_reassigning_a_name_moves_it_between_registries():
    m = nn.Module()
    m.x = nn.ReLU()
    m.x = nn.Parameter(lucid.ones(1))
    assert "x" not in m._modules and isinstance(m._parameters["x"], nn.Parameter)
    with pytest.raises(TypeError, match="parameter 'x'"):  # as PyTorch: only Parameter or None
        m.x = nn.ReLU()


def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.b.train()
    assert net.b[1].training and not net.training and not net.a.fc.training
    with pytest.raises(ValueError):
        net.train("yes")


def test_forward_hooks_modify_and_remove():
    lin = nn.Linear(2, 2)
    calls = []

    def pre(module, args):
        calls.append(("pre", module))
        return (args[0] * 0,)

    def post(module, args, out):
        calls.append(("post", args[0].shape))
        return out + 1

    h1 = lin.register_forward_pre_hook(pre)
    h2 = lin.register_forward_hook(post)
    out = lin(lucid.ones(5, 2))
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(lin.bias.detach().numpy() + 1, (5, 2)), rtol=1e-6)
    assert calls == [("pre", lin), ("post", (5, 2))]
    h1.remove()
    h2.remove()
    h2.remove()  # removing twice is harmless
    x = lucid.ones(1, 2)
    np.testing.assert_allclose(lin(x).detach().numpy(), (x.numpy() @ lin.weight.detach().numpy().T) + lin.bias.detach().numpy(), rtol=1e-6)
    assert len(calls) == 2


def test_hook_order_prepend_and_context_manager():
    m = nn.Identity()
    order = []
    m.register_forward_pre_hook(lambda mod, a: order.append(1))
    with m.register_forward_pre_hook(lambda mod, a: order.append(0), prepend=True):
        m(lucid.ones(1))
    m(lucid.ones(1))
    assert order == [0, 1, 1]


def test_pre_hook_returning_single_value_is_wrapped():
    m = nn.Identity()
    m.register_forward_pre_hook(lambda mod, args: lucid.zeros(3))
    assert m(lucid.ones(2)).shape == (3,)


def test_apply_zero_grad_and_requires_grad():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Block", "Linear", "ReLU", "Sequential", "Net"]
    out = net(lucid.randn(3, 3)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_parameter_identity_and_int_buffers():
    bn_like = nn.Module()
    bn_like.w = nn.Parameter(lucid.ones(3))
    bn_like.register_buffer("n", lucid.zeros((), dtype="int64"))
    w = bn_like.w
    w.grad = lucid.ones(3)
    assert bn_like.double() is bn_like
    assert bn_like.w is w and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert bn_like.n.dtype == np.int64
    bn_like.to(lucid.float16)
    assert w.dtype == np.float16
    bn_like.to("cpu", dtype=lucid.float32)
    assert w.dtype == np.float32 and w.device == "cpu"
    bn_like.to(device="cpu")


def test_to_rejects_unknown_device_listing_valid_ones():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="valid devices: cpu, gpu"):
        m.to("tpu")
    with pytest.raises(ValueError, match="valid devices"):
        m.to(device="cuda:x")


def test_repr_tree_matches_pytorch_layout():
    inner = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3, padding=1, bias=False), act=nn.ReLU(), inner=inner))
    assert repr(net) == (
        "Sequential(\n"
        "  (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (act): ReLU()\n"
        "  (inner): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=8, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.MaxPool2d(3, 2, 1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Module()) == "Module()"


def test_state_dict_contents_detached_shared_and_persistent_only():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["head_bias", "a.scale", "a.count", "a.fc.weight", "a.fc.bias", "b.0.weight", "b.0.bias"]
    assert all(type(v) is lucid.Tensor and not v.requires_grad for v in sd.values())
    assert sd["a.fc.weight"].data is net.a.fc.weight.data  # shares memory, as PyTorch
    kept = net.state_dict(keep_vars=True)
    assert kept["a.fc.weight"] is net.a.fc.weight


def test_state_dict_round_trip_into_fresh_model():
    lucid.manual_seed(1)
    src = Net()
    src.a.count.fill_(7)
    lucid.manual_seed(2)
    dst = Net()
    assert not np.allclose(src.a.fc.weight.detach().numpy(), dst.a.fc.weight.detach().numpy())
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (n1, t1), (n2, t2) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert n1 == n2
        np.testing.assert_array_equal(t1.numpy(), t2.numpy())
    w = dst.a.fc.weight
    assert w.data is not src.a.fc.weight.data  # copied in place, not aliased
    x = lucid.randn(2, 3)
    np.testing.assert_array_equal(src(x).detach().numpy(), dst(x).detach().numpy())


def test_load_state_dict_accepts_numpy_and_casts_dtype():
    lin = nn.Linear(2, 1)
    lin.load_state_dict({"weight": np.array([[1.0, 2.0]]), "bias": lucid.tensor([0.5], dtype="float64")})
    assert lin.weight.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.detach().numpy(), [[1.0, 2.0]])
    np.testing.assert_array_equal(lin.bias.detach().numpy(), [0.5])


def test_strict_load_error_lists_missing_unexpected_and_shape_mismatch():
    net = Net()
    sd = dict(net.state_dict())
    del sd["a.fc.bias"]
    del sd["head_bias"]
    sd["extra.weight"] = lucid.zeros(1)
    sd["b.0.weight"] = lucid.zeros(5, 5)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "head_bias", "a.fc.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert "size mismatch for b.0.weight: copying a param with shape (5, 5) from checkpoint, the shape in current model is (2, 4)." in msg


def test_non_strict_load_reports_keys_but_still_rejects_shape_mismatch():
    net = Net()
    sd = dict(net.state_dict())
    del sd["a.scale"]
    sd["junk"] = lucid.zeros(1)
    sd["b.0.bias"] = lucid.full((2,), 3.0)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["a.scale"] and result.unexpected_keys == ["junk"]
    np.testing.assert_array_equal(net.b[0].bias.detach().numpy(), [3.0, 3.0])
    sd["b.0.bias"] = lucid.zeros(3)
    with pytest.raises(RuntimeError, match="size mismatch for b.0.bias"):
        net.load_state_dict(sd, strict=False)


def test_non_persistent_buffer_not_expected_in_state():
    blk = Block()
    assert "cache" not in blk.state_dict()
    blk.load_state_dict(blk.state_dict())  # strict: "cache" is not missing


def test_module_and_optimizer_zero_grad_are_one_mechanism(fake_gpu):
    """Both clear through lucid.autograd.zero_grad: zeroing in place on the gradient's own GPU."""
    from lucid import optim

    model = nn.Linear(3, 2).to("gpu:1")
    opt = optim.SGD(model.parameters(), lr=0.1)
    for clear in (model.zero_grad, opt.zero_grad):
        model(lucid.randn(4, 3).to("gpu:1")).sum().backward()
        grads = [p.grad for p in model.parameters()]
        clear(set_to_none=False)
        assert all(p.grad is g for p, g in zip(model.parameters(), grads))  # the same tensors, zeroed in place
        assert all(g.device == "gpu:1" and not g.numpy().any() for g in grads)
        clear()
        assert all(p.grad is None for p in model.parameters())
