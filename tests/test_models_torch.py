"""lucid models against the reference architectures in PyTorch: same weights, same logits and grads.

Skipped when torch is not importable (it is not a lucid dependency). The reference
networks (benchmarks/torch_reference.py, shared with benchmarks/train_step.py) are plain
torch from torchvision's resnet.py and the ResNeSt reference code. Also runs without pytest:
``PYTHONPATH=. /opt/torchvenv/bin/python tests/test_models_torch.py``.
"""
import sys
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None

try:
    import pytest

    pytestmark = pytest.mark.skipif(torch is None, reason="needs PyTorch (e.g. /opt/torchvenv/bin/python)")
except ImportError:  # run as a script in an environment without pytest
    pytest = None

import lucid
import lucid.nn.functional as F
from lucid.models import ResNeSt, ResNet, ResNetConfig, ResNeXt, ResNeXtConfig, _ResNeStBottleneck, reference_state_dict

if torch is not None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks/
    from benchmarks.reference_arch import reference_kwargs
    from benchmarks.torch_reference import RefNet


CASES = {
    "resnet_basic": (lambda: ResNet(ResNetConfig("basic", [2, 1, 1], channels=(8, 16, 32), stem_width=8,
                                                 num_classes=5)),
                     dict(layers=[2, 1, 1], channels=(8, 16, 32), num_classes=5, bottleneck=False, stem_width=8)),
    "resnet_cifar_stem": (lambda: ResNet(ResNetConfig("basic", [1, 1], channels=(8, 16), stem_width=8,
                                                      stem_type="cifar", num_classes=5)),
                          dict(layers=[1, 1], channels=(8, 16), num_classes=5, bottleneck=False, stem_width=8,
                               cifar=True)),
    "resnext_bottleneck": (lambda: ResNeXt(ResNeXtConfig([1, 2], 4, 8, channels=(16, 32), stem_width=8,
                                                         num_classes=5)),
                           dict(layers=[1, 2], channels=(16, 32), num_classes=5, groups=4, base_width=8,
                                stem_width=8)),
    "resnest_2s2x16d": (lambda: ResNeSt(_ResNeStBottleneck, [1, 2], num_classes=5, base_width=16, stem_width=8,
                                        cardinality=2, radix=2, channels=(16, 32)),
                        dict(layers=[1, 2], channels=(16, 32), num_classes=5, groups=2, base_width=16,
                             resnest=True, stem_width=8, radix=2)),
    "resnest_1s4x16d": (lambda: ResNeSt(_ResNeStBottleneck, [1, 1], num_classes=5, base_width=16, stem_width=8,
                                        cardinality=4, radix=1, channels=(16, 32)),
                        dict(layers=[1, 1], channels=(16, 32), num_classes=5, groups=4, base_width=16,
                             resnest=True, stem_width=8, radix=1)),
}


def _compare(case):
    """Copy lucid's weights into the reference; compare logits, input and parameter grads in float64.

    float64 because some true gradients are exactly zero (fc1's bias feeds a training-mode
    BatchNorm, which removes any constant) and float32 rounding there is amplified by the
    1/std of a 3-sample batch; gradients are compared on the scale of the largest one.
    """
    build, ref_kwargs = CASES[case]
    lucid.manual_seed(3)
    model = build().double()
    ref = RefNet(**ref_kwargs).double()
    weights = reference_state_dict(model, "torchvision")
    expected_keys = set(ref.state_dict())
    assert set(weights) - expected_keys == set(), sorted(set(weights) - expected_keys)
    missing = expected_keys - set(weights)
    assert all(k.endswith("num_batches_tracked") for k in missing), sorted(missing)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32))
    labels = np.array([0, 4, 2])

    xl = lucid.tensor(x, requires_grad=True)
    out = model(xl)  # training mode: batch statistics on both sides
    F.cross_entropy(out, lucid.tensor(labels)).backward()
    xt = torch.tensor(x, requires_grad=True)
    out_t = ref(xt)
    TF.cross_entropy(out_t, torch.tensor(labels)).backward()

    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-12)
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    scale = max(np.abs(g).max() for g in ref_grads.values())
    assert len(ref_grads) == len(list(model.named_parameters()))
    for key, p in model.named_parameters():
        g_ref = ref_grads[key[len("stem."):] if key.startswith("stem.") else key]
        np.testing.assert_allclose(p.grad.numpy(), g_ref, rtol=1e-6, atol=1e-9 * scale, err_msg=key)


def test_resnet_basic_matches_torchvision_architecture():
    _compare("resnet_basic")


def test_resnet_cifar_stem_matches_torchvision_architecture():
    _compare("resnet_cifar_stem")


def test_reference_kwargs_describes_the_same_architectures():
    """benchmarks/train_step.py builds its PyTorch twin with reference_kwargs(config)."""
    for case, (build, ref_kwargs) in CASES.items():
        derived = RefNet(**reference_kwargs(build().config)).state_dict()
        written = RefNet(**ref_kwargs).state_dict()
        assert {k: tuple(v.shape) for k, v in derived.items()} == {k: tuple(v.shape) for k, v in written.items()}, case


def test_resnext_matches_torchvision_architecture():
    _compare("resnext_bottleneck")


def test_resnest_matches_the_reference_code():
    _compare("resnest_2s2x16d")


def test_resnest_radix_1_sigmoid_gate_matches_the_reference_code():
    _compare("resnest_1s4x16d")


if __name__ == "__main__":
    if torch is None:
        raise SystemExit("torch is not importable")
    for name in CASES:
        _compare(name)
        print(f"{name}: logits, input and parameter gradients match PyTorch")
    test_reference_kwargs_describes_the_same_architectures()
    print("reference_kwargs: same architectures as the hand-written reference arguments")
