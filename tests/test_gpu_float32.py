"""The float32 difference between the CPU and the GPU path of a ResNet step is one ReLU mask flip.

resnet_18 (64x64, batch 8, train mode) on the CPU and on the fake GPU: float64 agrees
to ~1e-15; in float32 the forward agrees to ~1e-6, but the stem and layer1 gradients
differ by ~2e-3 of the largest. The cause: one of 131,072 inputs of layer1.1's
BatchNorm+ReLU is 1.4e-6 after normalisation (float64), and the two float32 paths
(different GEMM summation orders) put it on different sides of 0. ReLU is continuous,
its derivative is not: that element's gradient is routed on one device and dropped on
the other, so every gradient computed after it in backward (layer1.1.bn1's bias and
everything before it in the network) differs, and nothing computed before it does.
Inherent to comparing float32 paths; ``benchmarks/gpu_step_equality.py`` counts such
flips and compares float32 by the forward.
"""
import numpy as np

import lucid
import lucid.nn.functional as F
from lucid import models
from lucid._backend import asnumpy
from lucid.ops import norm

AFTER_THE_FLIP = ("layer1.1.bn1.weight", "layer1.1.conv2.", "layer1.1.bn2.", "layer2.", "layer3.", "layer4.", "fc.")


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


def test_float32_difference_is_one_relu_mask_flip(fake_gpu, monkeypatch):
    cpu = _step("float32", "cpu", monkeypatch)
    gpu = _step("float32", "gpu", monkeypatch)
    scale = np.abs(cpu[0]).max()
    assert np.abs(gpu[0] - cpu[0]).max() / scale < 1e-5  # the forward agrees
    assert abs(gpu[1] - cpu[1]) / abs(cpu[1]) < 1e-5
    flips = [int((a != b).sum()) for a, b in zip(cpu[2], gpu[2])]
    assert flips == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # BN+ReLU #3: layer1.1.bn1
    diff = _compare(cpu[3], gpu[3])
    after = {n: d for n, d in diff.items() if n.startswith(AFTER_THE_FLIP)}
    before = {n: d for n, d in diff.items() if n not in after}
    assert max(after.values()) < 1e-5  # backward reaches these before the flipped element
    assert max(before.values()) > 1e-4  # ... and these after it: the routed gradient differs
    assert max(diff.values()) < 1e-2
