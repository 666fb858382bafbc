"""Tensor basics: construction, dtype/device rules, conversion, printing, bad input."""
import numpy as np
import pytest

import lucid


def test_defaults_and_shape_is_tuple(device):
    t = lucid.zeros(8, 10, device=device)
    assert t.shape == (8, 10) and isinstance(t.shape, tuple)
    assert str(t.shape) == "(8, 10)"
    assert t.dtype == lucid.float32
    assert lucid.tensor([1.0, 2.0]).dtype == np.float32
    assert lucid.tensor([1, 2]).dtype == np.int64
    assert lucid.tensor(np.zeros(3)).dtype == np.float64  # arrays keep their dtype, as torch.tensor
    assert lucid.tensor([1.0], dtype="float16").dtype == np.float16
    assert t.device == ("cpu" if device == "cpu" else "gpu:0")


def test_constructors_values(device):
    np.testing.assert_array_equal(lucid.ones(2, 3, device=device).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(lucid.full((2,), 7.5, device=device).numpy(), [7.5, 7.5])
    np.testing.assert_array_equal(lucid.arange(5, device=device).numpy(), np.arange(5))
    assert lucid.arange(5).dtype == np.int64 and lucid.arange(0.0, 1.0, 0.25).dtype == np.float32
    x = lucid.randn(3, 4, dtype="float64", device=device)
    assert lucid.zeros_like(x).dtype == np.float64 and lucid.ones_like(x).shape == (3, 4)
    assert lucid.empty(2, 2).shape == (2, 2)


def test_tensor_copies_its_input():
    a = np.arange(4.0)
    t = lucid.tensor(a)
    a[0] = 100
    assert t.numpy()[0] == 0


def test_manual_seed_reproduces_draws():
    lucid.manual_seed(123)
    a, b = lucid.randn(5).numpy(), lucid.rand(5).numpy()
    i = lucid.randint(0, 10, (6,)).numpy()
    lucid.manual_seed(123)
    np.testing.assert_array_equal(a, lucid.randn(5).numpy())
    np.testing.assert_array_equal(b, lucid.rand(5).numpy())
    np.testing.assert_array_equal(i, lucid.randint(0, 10, (6,)).numpy())
    assert ((i >= 0) & (i < 10)).all() and i.dtype == np.int64
    assert (b >= 0).all() and (b < 1).all()


def test_rng_state_roundtrip():
    state = lucid.random.get_rng_state()
    a = lucid.randn(4).numpy()
    lucid.random.set_rng_state(state)
    np.testing.assert_array_equal(a, lucid.randn(4).numpy())


def test_item_numpy_detach_and_to():
    t = lucid.tensor([[1.5]], requires_grad=True)
    assert t.item() == 1.5
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    d = t.detach()
    assert not d.requires_grad and d.numpy()[0, 0] == 1.5
    assert t.to("float64").dtype == np.float64
    assert t.to(device="cpu") is t
    assert t.double().to(lucid.float32).dtype == np.float32


def test_repr():
    assert repr(lucid.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    r = repr(lucid.tensor([1.0], requires_grad=True) * 2)
    assert "grad_fn=<Mul>" in r
    assert "dtype=float64" in repr(lucid.tensor([1.0], dtype="float64"))


def test_comparisons_and_indexing():
    t = lucid.tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((t > 1.5).numpy(), [False, True, True])
    np.testing.assert_array_equal((2.0 < t).numpy(), [False, False, True])
    np.testing.assert_array_equal((t == t).numpy(), [True, True, True])
    assert t[1].item() == 2.0
    np.testing.assert_array_equal(t[lucid.tensor([2, 0])].numpy(), [3.0, 1.0])
    np.testing.assert_array_equal(t[t > 1.5].numpy(), [2.0, 3.0])


def test_shape_methods():
    x = lucid.arange(24).reshape(2, 3, 4)
    assert x.view(6, 4).shape == (6, 4)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.transpose(0, 2).shape == (4, 3, 2)
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(1).squeeze(1).shape == (2, 3, 4)
    assert [p.shape for p in x.split(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in x.chunk(2, dim=1)] == [(2, 2, 4), (2, 1, 4)]
    assert x.T.shape == (4, 3, 2)
    assert lucid.zeros(0, 3, 2, 2).flatten(1).shape == (0, 12)  # empty batch (a rank with no samples)
    v, i = lucid.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)
    np.testing.assert_array_equal(v.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(i.numpy(), [1, 0])


def test_inplace_helpers():
    t = lucid.zeros(3)
    t.add_(lucid.ones(3), alpha=2.0).mul_(3.0).sub_(1.0)
    np.testing.assert_array_equal(t.numpy(), [5.0, 5.0, 5.0])
    t.copy_(np.array([1.0, 2.0, 3.0])).clamp_(max=2.0)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="broadcast"):
        t.copy_(np.zeros(4))


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"valid devices: cpu, gpu, gpu:N"):
        lucid.zeros(2, device="tpu")
    with pytest.raises(ValueError, match=r"unknown device 'tpu'"):
        lucid.zeros(2).to("tpu")
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        lucid.zeros(2, 3) + lucid.zeros(4)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        lucid.zeros(2, 3) @ lucid.zeros(4, 5)
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) and \(2, 4\)"):
        lucid.cat([lucid.zeros(2, 3), lucid.zeros(2, 4)])
    with pytest.raises(TypeError, match="float32 and float64"):
        lucid.zeros(2) + lucid.zeros(2, dtype="float64")
    with pytest.raises(ValueError, match="reshape"):
        lucid.zeros(6).reshape(4, 2)
    with pytest.raises(RuntimeError, match="only floating-point"):
        lucid.arange(3).requires_grad = True
    with pytest.raises(TypeError, match="unknown dtype"):
        lucid.zeros(2, dtype="float128x")


def test_tensor_and_module_to_parse_arguments_alike():
    """One parser (lucid/to_args.py), PyTorch's rules: each of device and dtype once."""
    from lucid import nn

    t, m = lucid.zeros(2), nn.Linear(2, 2)
    for obj in (t, m):
        with pytest.raises(TypeError, match=r"device both as an argument \('cpu'\) and as device='cpu'"):
            obj.to("cpu", device="cpu")
        with pytest.raises(TypeError, match="to\\(\\) got two dtypes"):
            obj.to("float32", lucid.float64)
        with pytest.raises(ValueError, match=r"'tpu' is neither a device nor a dtype; unknown device 'tpu'; valid devices: cpu, gpu"):
            obj.to("tpu")
        with pytest.raises(TypeError, match="unexpected arguments \\['copy'\\]"):
            obj.to("cpu", copy=True)
    assert t.to("cpu", dtype="float64").dtype == np.float64
    assert m.to("float64").weight.dtype == np.float64
    # the shorthands are one mechanism on both classes (lucid.to_args.ToShorthands)
    assert t.double().dtype == np.float64 and m.half().weight.dtype == np.float16 and m.float().bias.dtype == np.float32
    assert lucid.Tensor.cuda is lucid.Tensor.gpu is nn.Module.gpu and t.cpu().device == "cpu"
