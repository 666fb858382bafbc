"""Weight import: state dicts with torchvision / timm key names, written with NumPy, load exactly."""
import numpy as np
import pytest
from safetensors.numpy import save_file

import lucid
from lucid.models import ResNeSt, ResNet, ResNetConfig, _ResNeStBottleneck, load_pretrained, reference_state_dict


def _bn(prefix, c):
    return {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()}


def torchvision_tiny_keys():
    """torchvision's names and shapes for BasicBlock ResNet, layers [1, 1], widths (8, 16), 5 classes."""
    return {"conv1.weight": (8, 3, 7, 7), **_bn("bn1", 8),
            "layer1.0.conv1.weight": (8, 8, 3, 3), **_bn("layer1.0.bn1", 8),
            "layer1.0.conv2.weight": (8, 8, 3, 3), **_bn("layer1.0.bn2", 8),
            "layer2.0.conv1.weight": (16, 8, 3, 3), **_bn("layer2.0.bn1", 16),
            "layer2.0.conv2.weight": (16, 16, 3, 3), **_bn("layer2.0.bn2", 16),
            "layer2.0.downsample.0.weight": (16, 8, 1, 1), **_bn("layer2.0.downsample.1", 16),
            "fc.weight": (5, 16), "fc.bias": (5,)}


def _resnest_block(prefix, cin, width, cout):
    """timm / ResNeSt-reference names of a radix-2 split-attention bottleneck with avg-down shortcut."""
    return {f"{prefix}.conv1.weight": (width, cin, 1, 1), **_bn(f"{prefix}.bn1", width),
            f"{prefix}.conv2.conv.weight": (2 * width, width // 2, 3, 3), **_bn(f"{prefix}.conv2.bn0", 2 * width),
            f"{prefix}.conv2.fc1.weight": (32, width, 1, 1), f"{prefix}.conv2.fc1.bias": (32,),
            **_bn(f"{prefix}.conv2.bn1", 32),
            f"{prefix}.conv2.fc2.weight": (2 * width, 32, 1, 1), f"{prefix}.conv2.fc2.bias": (2 * width,),
            f"{prefix}.conv3.weight": (cout, width, 1, 1), **_bn(f"{prefix}.bn3", cout),
            f"{prefix}.downsample.1.weight": (cout, cin, 1, 1), **_bn(f"{prefix}.downsample.2", cout)}


def timm_resnest_tiny_keys():
    """timm's names and shapes for ResNeSt layers [1, 1], widths (8, 16), stem width 8, 5 classes."""
    return {"conv1.0.weight": (8, 3, 3, 3), **_bn("conv1.1", 8), "conv1.3.weight": (8, 8, 3, 3),
            **_bn("conv1.4", 8), "conv1.6.weight": (16, 8, 3, 3), **_bn("bn1", 16),
            **_resnest_block("layer1.0", 16, 8, 32), **_resnest_block("layer2.0", 32, 16, 64),
            "fc.weight": (5, 64), "fc.bias": (5,)}


def random_state(keys, seed=1):
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys.items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(7, dtype=np.int64)
        elif key.endswith("running_var"):
            state[key] = (np.abs(rng.standard_normal(shape)) + 0.5).astype(np.float32)
        else:
            state[key] = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    return state


def tiny_resnet():
    return ResNet(ResNetConfig("basic", [1, 1], channels=(8, 16), stem_width=8, num_classes=5))


def tiny_resnest():
    return ResNeSt(_ResNeStBottleneck, [1, 1], channels=(8, 16), stem_width=8, num_classes=5)


def _outputs(model, x):
    model.eval()
    with lucid.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_torchvision_names_load_onto_the_right_tensors(tmp_path, suffix):
    state = random_state(torchvision_tiny_keys())
    path = str(tmp_path / f"tv{suffix}")
    np.savez(path, **state) if suffix == ".npz" else save_file(state, path)
    model = load_pretrained(tiny_resnet(), path, source="torchvision")
    np.testing.assert_array_equal(model.stem.conv1.weight.detach().numpy(), state["conv1.weight"])
    np.testing.assert_array_equal(model.stem.bn1.running_var.numpy(), state["bn1.running_var"])
    np.testing.assert_array_equal(model.layer2[0].downsample[0].weight.detach().numpy(), state["layer2.0.downsample.0.weight"])
    np.testing.assert_array_equal(model.layer2[0].downsample[1].bias.detach().numpy(), state["layer2.0.downsample.1.bias"])
    np.testing.assert_array_equal(model.layer1[0].bn2.running_mean.numpy(), state["layer1.0.bn2.running_mean"])
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), state["fc.weight"])


def test_timm_resnest_names_load_and_reproduce_outputs(tmp_path):
    state = random_state(timm_resnest_tiny_keys())
    save_file(state, str(tmp_path / "timm.safetensors"))
    model = load_pretrained(tiny_resnest(), tmp_path / "timm.safetensors", source="timm")
    np.testing.assert_array_equal(model.stem.conv1[6].weight.detach().numpy(), state["conv1.6.weight"])
    np.testing.assert_array_equal(model.layer2[0].conv2.fc2.bias.detach().numpy(), state["layer2.0.conv2.fc2.bias"])
    np.testing.assert_array_equal(model.layer1[0].downsample[2].running_var.numpy(),
                                  state["layer1.0.downsample.2.running_var"])
    # a second model loaded from the same file computes exactly the same logits
    x = lucid.randn(2, 3, 32, 32)
    other = load_pretrained(tiny_resnest(), tmp_path / "timm.safetensors", source="timm")
    np.testing.assert_array_equal(_outputs(model, x), _outputs(other, x))


def test_round_trip_through_reference_names_reproduces_outputs(tmp_path):
    source = tiny_resnet()
    source.train()
    source(lucid.randn(4, 3, 32, 32))  # move the BN running statistics away from their defaults
    exported = reference_state_dict(source, "torchvision")
    assert set(exported) - set(torchvision_tiny_keys()) == set()
    assert set(torchvision_tiny_keys()) - set(exported) <= {k for k in torchvision_tiny_keys()
                                                            if k.endswith("num_batches_tracked")}
    np.savez(tmp_path / "w.npz", **exported)
    lucid.manual_seed(123)
    target = load_pretrained(tiny_resnet(), tmp_path / "w.npz")
    x = lucid.randn(2, 3, 32, 32)
    np.testing.assert_array_equal(_outputs(target, x), _outputs(source, x))


def test_mismatches_are_listed(tmp_path):
    state = random_state(torchvision_tiny_keys())
    state["layer9.0.conv1.weight"] = np.zeros((1,), np.float32)
    del state["fc.bias"]
    state["fc.weight"] = np.zeros((6, 16), np.float32)
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(ValueError) as info:
        load_pretrained(tiny_resnet(), tmp_path / "bad.npz")
    text = str(info.value)
    assert "keys that map to no model tensor (1): layer9.0.conv1.weight" in text
    assert "model keys the file lacks (1): fc.bias" in text
    assert "shape mismatches (1): fc.weight (6, 16) -> fc.weight (5, 16)" in text


def test_non_strict_loads_what_maps_but_never_a_wrong_shape(tmp_path):
    state = random_state(torchvision_tiny_keys())
    del state["fc.bias"]
    np.savez(tmp_path / "partial.npz", **state)
    model = load_pretrained(tiny_resnet(), tmp_path / "partial.npz", strict=False)
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), state["fc.weight"])
    state["fc.weight"] = np.zeros((2, 2), np.float32)
    np.savez(tmp_path / "wrong.npz", **state)
    with pytest.raises(ValueError, match="shape mismatches"):
        load_pretrained(tiny_resnet(), tmp_path / "wrong.npz", strict=False)


def test_lazy_modules_take_the_file_shapes(tmp_path):
    """Like load_state_dict: lazy placeholders are materialised with the stored shapes."""
    state = random_state({"0.weight": (4, 2, 3, 3), "0.bias": (4,), **_bn("1", 4)})
    np.savez(tmp_path / "lazy.npz", **state)
    model = load_pretrained(lucid.nn.Sequential(lucid.nn.LazyConv2d(4, 3), lucid.nn.LazyBatchNorm2d()), tmp_path / "lazy.npz")
    assert type(model[0]).__name__ == "Conv2d" and model[0].in_channels == 2
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), state["0.weight"])
    np.testing.assert_array_equal(model[1].running_var.numpy(), state["1.running_var"])
    assert model(lucid.randn(1, 2, 5, 5)).shape == (1, 4, 3, 3)


def test_bad_source_and_file_type(tmp_path):
    with pytest.raises(ValueError, match="unknown weight source .keras.; valid: torchvision, timm, lucid"):
        load_pretrained(tiny_resnet(), tmp_path / "w.npz", source="keras")
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a .safetensors nor a .npz file"):
        load_pretrained(tiny_resnet(), tmp_path / "w.pth")
