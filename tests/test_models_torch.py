"""lucid models against the reference architectures in PyTorch: same weights, same logits and grads.

Skipped when torch is not importable (it is not a lucid dependency). The reference
networks are written here in plain torch from torchvision's resnet.py and the ResNeSt
reference code (torchvision itself is not needed). Also runs without pytest:
``PYTHONPATH=. /opt/torchvenv/bin/python tests/test_models_torch.py``.
"""
import numpy as np

try:
    import torch
    import torch.nn as tnn
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

    class TVBlock(tnn.Module):
        """torchvision BasicBlock (expansion 1) or Bottleneck (expansion 4, stride on the 3x3)."""

        def __init__(self, inplanes, planes, stride, downsample, bottleneck, groups=1, base_width=64):
            super().__init__()
            self.bottleneck = bottleneck
            if bottleneck:
                width = int(planes * (base_width / 64.0)) * groups
                self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
                self.bn1 = tnn.BatchNorm2d(width)
                self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
                self.bn2 = tnn.BatchNorm2d(width)
                self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
                self.bn3 = tnn.BatchNorm2d(planes * 4)
            else:
                self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
                self.bn1 = tnn.BatchNorm2d(planes)
                self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
                self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = TF.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.bottleneck:
                out = self.bn3(self.conv3(TF.relu(out)))
            return TF.relu(out + (x if self.downsample is None else self.downsample(x)))

    class SplAt(tnn.Module):
        """The reference SplAtConv2d (conv, bn0, relu, fc1, bn1, relu, fc2, rSoftMax)."""

        def __init__(self, channels, stride, cardinality, radix):
            super().__init__()
            inter = max(channels * radix // 4, 32)
            self.radix, self.cardinality = radix, cardinality
            self.conv = tnn.Conv2d(channels, channels * radix, 3, stride, 1, groups=cardinality * radix, bias=False)
            self.bn0 = tnn.BatchNorm2d(channels * radix)
            self.fc1 = tnn.Conv2d(channels, inter, 1, groups=cardinality)
            self.bn1 = tnn.BatchNorm2d(inter)
            self.fc2 = tnn.Conv2d(inter, channels * radix, 1, groups=cardinality)

        def forward(self, x):
            x = TF.relu(self.bn0(self.conv(x)))
            batch, rchannel = x.shape[:2]
            splited = torch.split(x, rchannel // self.radix, dim=1) if self.radix > 1 else [x]
            gap = TF.adaptive_avg_pool2d(sum(splited), 1)
            atten = self.fc2(TF.relu(self.bn1(self.fc1(gap))))
            if self.radix > 1:
                atten = atten.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
                atten = TF.softmax(atten, dim=1).reshape(batch, -1, 1, 1)
                return sum(a * s for a, s in zip(torch.split(atten, rchannel // self.radix, dim=1), splited))
            return torch.sigmoid(atten) * x

    class RefResNeStBlock(tnn.Module):
        """The reference ResNeSt Bottleneck (avd after the split-attention conv, avd_first=False)."""

        def __init__(self, inplanes, planes, stride, downsample, cardinality, base_width, radix):
            super().__init__()
            width = int(planes * (base_width / 64.0)) * cardinality
            self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.avd_layer = tnn.AvgPool2d(3, stride, padding=1) if stride > 1 else None
            self.conv2 = SplAt(width, 1, cardinality, radix)
            self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.downsample = downsample

        def forward(self, x):
            out = self.conv2(TF.relu(self.bn1(self.conv1(x))))
            if self.avd_layer is not None:
                out = self.avd_layer(out)
            out = self.bn3(self.conv3(out))
            return TF.relu(out + (x if self.downsample is None else self.downsample(x)))

    class RefNet(tnn.Module):
        """torchvision's ResNet, or with ``resnest`` the ResNeSt reference (deep stem, avg-down, SplAt)."""

        def __init__(self, layers, channels, num_classes, bottleneck=True, groups=1, base_width=64,
                     resnest=False, stem_width=64, radix=2):
            super().__init__()
            if resnest:
                w = stem_width
                self.conv1 = tnn.Sequential(
                    tnn.Conv2d(3, w, 3, 2, 1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                    tnn.Conv2d(w, w, 3, 1, 1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                    tnn.Conv2d(w, 2 * w, 3, 1, 1, bias=False))
                inplanes = 2 * w
            else:
                self.conv1 = tnn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
                inplanes = stem_width
            self.bn1 = tnn.BatchNorm2d(inplanes)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            expansion = 4 if bottleneck or resnest else 1
            for i, (planes, n) in enumerate(zip(channels, layers)):
                stride = 1 if i == 0 else 2
                down = None
                if stride != 1 or inplanes != planes * expansion:
                    conv = tnn.Conv2d(inplanes, planes * expansion, 1, 1 if resnest else stride, bias=False)
                    pool = tnn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                    down = tnn.Sequential(*([pool] if resnest else []), conv, tnn.BatchNorm2d(planes * expansion))
                blocks = []
                for j in range(n):
                    cin, s, d = (inplanes, stride, down) if j == 0 else (planes * expansion, 1, None)
                    if resnest:
                        blocks.append(RefResNeStBlock(cin, planes, s, d, groups, base_width, radix))
                    else:
                        blocks.append(TVBlock(cin, planes, s, d, bottleneck, groups, base_width))
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
                inplanes = planes * expansion
            self.n_stages = len(layers)
            self.fc = tnn.Linear(inplanes, num_classes)

        def forward(self, x):
            x = self.maxpool(TF.relu(self.bn1(self.conv1(x))))
            for i in range(self.n_stages):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(torch.flatten(TF.adaptive_avg_pool2d(x, 1), 1))


CASES = {
    "resnet_basic": (lambda: ResNet(ResNetConfig("basic", [2, 1, 1], channels=(8, 16, 32), stem_width=8,
                                                 num_classes=5)),
                     dict(layers=[2, 1, 1], channels=(8, 16, 32), num_classes=5, bottleneck=False, stem_width=8)),
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
