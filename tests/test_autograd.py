"""The backward engine: accumulation, hooks, graph release, grad mode, bad input."""
import numpy as np
import pytest

import lucid
from lucid.autograd import Function


def leaf(*shape, device="cpu"):
    return lucid.randn(*shape, dtype="float64", device=device, requires_grad=True)


def test_reused_tensor_accumulates(device):
    x = leaf(3, device=device)
    y = (x * x + x * 3.0).sum()  # d/dx = 2x + 3
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy() + 3)


def test_grad_accumulates_across_backward_calls():
    x = leaf(4)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(4, 5.0))


def test_shared_gradient_is_not_aliased():
    # add passes the same gradient array to both inputs; in-place accumulation must not corrupt it
    a, b = leaf(3), leaf(3)
    (a + b).sum().backward()
    (a * 1.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(3, 2.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(3, 1.0))


def test_unbroadcasting():
    a, b, c = leaf(2, 3), leaf(3), leaf(2, 1)
    (a * b + c).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), a.detach().numpy().sum(0))
    np.testing.assert_allclose(c.grad.numpy(), np.full((2, 1), 3.0))
    assert lucid.autograd.gradcheck(lambda a, b, c: a / b - c**2 + b * c, [a, b, c])


def test_backward_twice_needs_retain_graph():
    x = leaf(3)
    y = (x.exp() * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp(x.detach().numpy()))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_buffers_released_after_backward():
    x = leaf(3)
    y = x.exp()
    z = y.sum()
    z.backward()
    assert y.grad_fn.saved is None


def test_non_scalar_backward_needs_gradient():
    x = leaf(2, 2)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="non-scalar"):
        y.backward()
    y.backward(lucid.ones(2, 2, dtype="float64"))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 2.0))
    with pytest.raises(ValueError, match="gradient shape"):
        (x * 2.0).backward(lucid.ones(3, dtype="float64"))


def test_backward_without_grad_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lucid.ones(2).sum().backward()


def test_no_grad_and_enable_grad():
    x = leaf(2)
    with lucid.no_grad():
        y = x * 2.0
        with lucid.enable_grad():
            z = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    assert lucid.is_grad_enabled()

    @lucid.no_grad()
    def f(t):
        return t * 3.0

    assert not f(x).requires_grad


def test_detach_stops_gradient():
    x = leaf(3)
    (x.detach() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x.detach().numpy())


def test_tensor_hook_can_replace_gradient():
    x = leaf(3)
    y = x * 2.0
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10.0)
    y.sum().backward()
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 20.0))
    handle = x.register_hook(lambda g: g * 0.0)
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 20.0))
    handle()
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 21.0))


def test_retain_grad():
    x = leaf(3)
    y = x * 2.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.detach().numpy())


def test_post_accumulate_hook_fires_once_per_pass_when_final():
    """Hooks fire when a leaf's gradient is complete, before earlier layers' backward runs."""
    events = []

    class Trace(Function):
        def forward(self, x, tag):
            self.tag = tag
            return x.copy()

        def backward(self, g):
            events.append(("node", self.tag))
            return g, None

    w1, w2 = leaf(3), leaf(3)
    x = lucid.ones(3, dtype="float64")
    h = Trace.apply(x * w1, "layer1")
    out = (h * w2 + w2 * 2.0).sum()  # w2 used twice: one hook call after both contributions
    for name, w in (("w1", w1), ("w2", w2)):
        w.register_post_accumulate_grad_hook(lambda t, name=name: events.append(("hook", name, t.grad.numpy().copy())))
    out.backward()
    order = [e[:2] for e in events]
    assert order == [("hook", "w2"), ("node", "layer1"), ("hook", "w1")]
    np.testing.assert_allclose(events[0][2], w1.detach().numpy() + 2.0)


def test_cut_paths_settle_dependencies():
    """A branch whose backward returns None must not block the leaves behind it."""

    class Stop(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, g):
            return None

    x = leaf(3)
    y = Stop.apply(x * 2.0) + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_mixed_devices_error():
    if not lucid.gpu_available():
        pytest.skip("needs a GPU")
    with pytest.raises(RuntimeError, match="different devices"):
        lucid.zeros(2) + lucid.zeros(2, device="gpu")


def test_gradcheck_catches_wrong_gradient():
    class Wrong(Function):
        def forward(self, x):
            return x * x

        def backward(self, g):
            return g * self_x[0]  # should be 2x

    x = leaf(3)
    self_x = [x.detach().numpy()]
    with pytest.raises(AssertionError, match="analytic"):
        lucid.autograd.gradcheck(lambda t: Wrong.apply(t), [x])
