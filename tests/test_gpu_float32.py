"""The float32 difference between the CPU and the GPU path of a ResNet step is ReLU mask flips.

resnet_18 (64x64, batch 8, train mode) on the CPU and on the fake GPU: float64 agrees
to ~1e-15; in float32 the forward agrees to ~1e-6, but the stem and layer1 gradients
differ by ~2e-3 of the largest. The cause: one of 131,072 inputs of layer1.1's
BatchNorm+ReLU is 1.4e-6 after normalisation (float64), and the two float32 paths
(different GEMM summation orders) put it on different sides of 0. ReLU is continuous,
its derivative is not: that element's gradient is routed on one device and dropped on
the other, so every gradient computed after it in backward (layer1.1.bn1's bias and
everything before it in the network) differs, and nothing computed before it does.
Inherent to comparing float32 paths; ``benchmarks/gpu_step_equality.py`` counts such
flips and compares float32 by the forward. The flip was found with the GPU path before
its fused kernels (``gpu_fused.enabled(False)``) and OpenBLAS's Haswell kernel; with the
fused kernels, or OpenBLAS's SkylakeX kernel, the sums run in another order and, for this
input, no ReLU input changes sides, so the gradients agree.
"""
import numpy as np

import lucid
import lucid.nn.functional as F
from lucid import models
from lucid._backend import asnumpy
from lucid.ops import gpu_fused, norm


def _step(dtype, device, monkeypatch):
    masks = []
    forward = norm.BatchNorm.forward

    def recording(self, *a, **k):
        y = forward(self, *a, **k)
        if k.get("relu"):
            masks.append(asnumpy(y) > 0)
        return y

    monkeypatch.setattr(norm.BatchNorm, "forward", recording)
    lucid.manual_seed(0)
    model = models.resnet_18(num_classes=10).to(dtype).to(device)
    rng = np.random.default_rng(1)
    x = lucid.tensor(rng.standard_normal((8, 3, 64, 64)).astype(dtype), device=device)
    y = lucid.tensor(rng.integers(0, 10, 8), device=device)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    monkeypatch.setattr(norm.BatchNorm, "forward", forward)
    grads = {n: asnumpy(p.grad.data).astype(np.float64) for n, p in model.named_parameters()}
    return asnumpy(logits.data).astype(np.float64), float(loss.item()), masks, grads


def _compare(a, b):
    scale = max(np.abs(v).max() for v in a.values())
    return {n: float(np.abs(a[n] - b[n]).max() / scale) for n in a}


def test_float64_step_agrees(fake_gpu, monkeypatch):
    cpu = _step("float64", "cpu", monkeypatch)
    gpu = _step("float64", "gpu", monkeypatch)
    assert max(_compare(cpu[3], gpu[3]).values()) < 1e-12
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-12, atol=1e-12)


def _bn_relu_names(model) -> list[str]:
    """resnet_18's BatchNorm+ReLU layers in forward order: the stem's and each block's first."""
    return ["bn1"] + [n for n, _ in model.named_modules() if n.startswith("layer") and n.endswith(".bn1")]


def test_float32_difference_is_relu_mask_flips(fake_gpu, monkeypatch):
    """Without fused GPU kernels. Which ReLU inputs (if any) change sides depends on the
    float32 kernels (the fake GPU's GEMMs are OpenBLAS's): with its Haswell kernel it is one
    element of layer1.1.bn1, with SkylakeX none."""
    cpu = _step("float32", "cpu", monkeypatch)
    with gpu_fused.enabled(False):
        gpu = _step("float32", "gpu", monkeypatch)
    scale = np.abs(cpu[0]).max()
    assert np.abs(gpu[0] - cpu[0]).max() / scale < 1e-5  # the forward agrees
    assert abs(gpu[1] - cpu[1]) / abs(cpu[1]) < 1e-5
    flips = [int((a != b).sum()) for a, b in zip(cpu[2], gpu[2])]
    names = _bn_relu_names(models.resnet_18(num_classes=10))
    assert len(flips) == len(names) and sum(flips) <= 2
    diff = _compare(cpu[3], gpu[3])
    if not any(flips):
        assert max(diff.values()) < 1e-4
        return
    last = names[max(i for i, f in enumerate(flips) if f)]  # the flip backward reaches first
    params = list(diff)
    cut = params.index(f"{last}.bias") + 1
    assert max(diff[n] for n in params[cut:]) < 1e-5  # backward reaches these before the flipped element
    assert max(diff[n] for n in params[:cut]) > 1e-4  # ... and these after it: the routed gradient differs
    assert max(diff.values()) < 1e-2


def test_float32_without_a_flip_gradients_agree(fake_gpu, monkeypatch):
    cpu = _step("float32", "cpu", monkeypatch)
    gpu = _step("float32", "gpu", monkeypatch)  # fused kernels: other summation orders
    assert all(int((a != b).sum()) == 0 for a, b in zip(cpu[2], gpu[2]))
    assert max(_compare(cpu[3], gpu[3]).values()) < 1e-4
