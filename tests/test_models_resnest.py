"""ResNeSt: split-attention values against a NumPy transcription of the reference, and block layout."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.models import ResNeSt, SplitAttentionConv2d, _ResNeStBottleneck, create_model


def _bn_eval(x, bn):
    """BatchNorm2d in eval mode with the module's own statistics, in NumPy (N, C, H, W)."""
    shape = (1, -1, 1, 1)
    mean, var = bn.running_mean.numpy().reshape(shape), bn.running_var.numpy().reshape(shape)
    w, b = bn.weight.detach().numpy().reshape(shape), bn.bias.detach().numpy().reshape(shape)
    return (x - mean) / np.sqrt(var + bn.eps) * w + b


def _grouped_1x1(x, conv):
    """A grouped 1x1 conv with bias on (N, C, 1, 1) input, in NumPy."""
    w, b = conv.weight.detach().numpy()[:, :, 0, 0], conv.bias.detach().numpy()
    groups, n = conv.groups, x.shape[0]
    xs = x.reshape(n, groups, -1)
    ws = w.reshape(groups, -1, w.shape[1])
    return (np.einsum("ngi,goi->ngo", xs, ws).reshape(n, -1) + b).reshape(n, -1, 1, 1)


def _reference_split_attention(module, conv_out, radix, cardinality):
    """The reference SplAtConv2d forward after its conv (zhanghang1989/ResNeSt splat.py)."""
    x = np.maximum(_bn_eval(conv_out, module.bn0), 0)
    batch, rchannel = x.shape[:2]
    splits = np.split(x, radix, axis=1) if radix > 1 else [x]
    gap = sum(splits).mean(axis=(2, 3), keepdims=True)
    gap = np.maximum(_bn_eval(_grouped_1x1(gap, module.fc1), module.bn1), 0)
    atten = _grouped_1x1(gap, module.fc2).reshape(batch, -1)
    if radix > 1:  # rSoftMax: view(batch, cardinality, radix, -1).transpose(1, 2), softmax over dim 1
        a = atten.reshape(batch, cardinality, radix, -1).transpose(0, 2, 1, 3)
        a = np.exp(a - a.max(axis=1, keepdims=True))
        atten = (a / a.sum(axis=1, keepdims=True)).reshape(batch, -1, 1, 1)
        return sum(w * u for w, u in zip(np.split(atten, radix, axis=1), splits))
    return 1 / (1 + np.exp(-atten.reshape(batch, -1, 1, 1))) * x


@pytest.mark.parametrize("radix, cardinality", [(2, 1), (2, 2), (4, 2), (1, 4)])
def test_split_attention_matches_the_reference(radix, cardinality):
    module = SplitAttentionConv2d(16, stride=1, cardinality=cardinality, radix=radix)
    for bn in (module.bn0, module.bn1):  # non-trivial statistics and affine parameters
        c = bn.weight.shape[0]
        bn.running_mean.copy_(np.linspace(-0.5, 0.5, c).astype(np.float32))
        bn.running_var.copy_(np.linspace(0.5, 2.0, c).astype(np.float32))
        bn.weight.data[...] = np.linspace(0.5, 1.5, c)
        bn.bias.data[...] = np.linspace(-0.2, 0.2, c)
    module.eval()
    seen = {}
    module.conv.register_forward_hook(lambda m, args, out: seen.setdefault("conv", out.numpy().copy()))
    x = lucid.randn(2, 16, 5, 5)
    with lucid.no_grad():
        out = module(x).numpy()
    expected = _reference_split_attention(module, seen["conv"], radix, cardinality)
    assert out.shape == (2, 16, 5, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_split_attention_layout_follows_the_reference():
    m = SplitAttentionConv2d(64, stride=2, cardinality=2, radix=4)
    assert m.conv.groups == 8 and tuple(m.conv.weight.shape) == (256, 8, 3, 3) and m.conv.bias is None
    assert tuple(m.fc1.weight.shape) == (64, 32, 1, 1) and m.fc1.groups == 2  # max(64*4//4, 32) = 64
    assert tuple(m.fc2.weight.shape) == (256, 32, 1, 1) and m.fc2.groups == 2
    assert m.fc1.bias is not None and m.fc2.bias is not None
    assert SplitAttentionConv2d(32, radix=2).fc1.weight.shape[0] == 32  # max(32*2//4, 32)


def test_avd_pools_after_the_split_attention_conv_only_in_strided_blocks():
    model = ResNeSt(_ResNeStBottleneck, [2, 2], channels=(8, 16), stem_width=8, num_classes=3)
    assert model.layer1[0].avd_layer is None and model.layer2[1].avd_layer is None
    avd = model.layer2[0].avd_layer
    assert isinstance(avd, nn.AvgPool2d) and (avd.kernel_size, avd.stride, avd.padding) in [
        (3, 2, 1), ((3, 3), (2, 2), (1, 1))]
    assert model.layer2[0].conv2.conv.stride in (1, (1, 1))  # the pool carries the stride
    assert not model.layer2[0].avd_first
    order = []
    for name in ("conv2", "avd_layer", "conv3"):
        getattr(model.layer2[0], name).register_forward_pre_hook(lambda m, a, name=name: order.append(name))
    model(lucid.randn(2, 3, 32, 32))
    assert order == ["conv2", "avd_layer", "conv3"]


def test_avd_first_pools_before_the_split_attention_conv():
    model = create_model("resnest_50_1s4x24d", layers=[1, 1, 1, 1], num_classes=3)
    block = model.layer2[0]
    order = []
    for name in ("conv2", "avd_layer"):
        getattr(block, name).register_forward_pre_hook(lambda m, a, name=name: order.append(name))
    model.eval()
    with lucid.no_grad():
        model(lucid.randn(1, 3, 32, 32))
    assert order == ["avd_layer", "conv2"]
    assert block.conv2.radix == 1 and block.conv2.conv.groups == 4


def test_resnest_deep_stem_and_avg_down_shortcut():
    model = create_model("resnest_50", layers=[1, 1, 1, 1])
    conv_a, _, _, conv_b, _, _, conv_c = model.stem.conv1
    assert [tuple(c.weight.shape) for c in (conv_a, conv_b, conv_c)] == [(32, 3, 3, 3), (32, 32, 3, 3),
                                                                        (64, 32, 3, 3)]
    assert isinstance(model.layer3[0].downsample[0], nn.AvgPool2d)
