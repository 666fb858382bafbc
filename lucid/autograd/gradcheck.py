"""Check analytic gradients against central finite differences (use float64 inputs)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from lucid import _backend


def gradcheck(
    fn: Callable,
    inputs: Sequence,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """True when backward agrees with finite differences for every input that requires grad.

    The output is reduced to a scalar with fixed random weights ``v``; the analytic
    gradient is ``backward(v)`` and the numeric one perturbs each input element by
    +-eps. Raises AssertionError naming the input and the worst element otherwise.
    """
    from lucid.tensor import Tensor

    targets = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in targets:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 for finite differences")
    out = fn(*inputs)
    rng = np.random.default_rng(seed)
    xp = _backend.get_array_module(out.data)
    v = xp.asarray(rng.standard_normal(out.shape))
    for i in targets:
        inputs[i].grad = None
    out.backward(Tensor._wrap(v, out.device))

    def scalar() -> float:
        return float((fn(*inputs).data * v).sum())

    for i in targets:
        x = inputs[i]
        analytic = _backend.asnumpy(x.grad.data) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1) if x.data.flags.c_contiguous else None
        if flat is None:
            x.data = x.data.copy()
            flat = x.data.reshape(-1)
        for k in range(flat.size):
            orig = float(flat[k])
            flat[k] = orig + eps
            plus = scalar()
            flat[k] = orig - eps
            minus = scalar()
            flat[k] = orig
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if (err > 0).any():
            k = np.unravel_index(int(np.argmax(err)), x.shape)
            raise AssertionError(
                f"gradcheck: input {i} of shape {x.shape}: analytic {analytic[k]:.8g} != numeric "
                f"{numeric[k]:.8g} at index {tuple(int(j) for j in k)} "
                f"(max abs diff {np.abs(analytic - numeric).max():.3g})"
            )
    return True
