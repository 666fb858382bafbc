"""Fine-tuning: pretrained files in torchvision / timm / lucid names, a new classifier,
frozen prefixes (BatchNorm statistics too) and a scaled backbone learning rate."""
import json
import os

import numpy as np
import pytest
from dist_scripts import mpirun
from safetensors.numpy import save_file

import lucid
from lucid.models import create_model, reference_state_dict
from lucid.models.pretrained import detect_source
from lucid.nn import FrozenBatchNorm2d
from lucid.train import finetune
from lucid.train.config import config_from_dict
from lucid.train.model_setup import build_model
from lucid.train.optim_setup import build_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG = os.path.join(ROOT, "configs", "debug.toml")
TINY = {"in_channels": 1, "stem_type": "cifar", "layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}


def torchvision_file(path, num_classes=7, seed=3, overrides=None) -> dict:
    """A ResNet-18's weights (tiny unless ``overrides``) under torchvision's key names
    (``conv1.weight``, ``bn1.*``, ``fc.*``), randomised."""
    model = create_model("resnet_18", num_classes=num_classes, **(TINY if overrides is None else overrides))
    rng = np.random.default_rng(seed)
    state = {k: (v if v.dtype.kind == "i" else (rng.random(v.shape) + 0.5).astype(np.float32))
             for k, v in reference_state_dict(model).items()}
    save_file(state, str(path))
    return state


def build(cfg):
    """(model, what its pretrained load did) as the Trainer builds them on one rank."""
    loads = []
    model = build_model(cfg, "cpu", 1, on_pretrained=loads.append)
    return model, (loads[0] if loads else None)


def config(**model):
    return config_from_dict({"model": {"name": "resnet_18", "num_classes": 4, "overrides": TINY, **model},
                             "data": {"source": "fake", "image_size": 16, "channels": 1}, "run": {"sync_bn": False}})


def test_torchvision_file_with_other_num_classes_loads_backbone_and_resets_head(tmp_path):
    state = torchvision_file(tmp_path / "w.safetensors")
    model, load = build(config(pretrained=str(tmp_path / "w.safetensors")))
    assert load.source == "torchvision" and load.detected and load.head == "fc"
    assert "fc.weight has 7 classes, model.num_classes = 4" in load.head_reset and "re-initialised" in finetune.describe_load(load)
    assert load.tensors == len(state) - 2
    mine = reference_state_dict(model)
    for key, value in state.items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(mine[key], value, err_msg=key)  # after 0 steps: the file, bit for bit
    assert mine["fc.weight"].shape == (4, 64) and np.abs(mine["fc.weight"]).max() < 0.5  # fresh init, not the file's


def test_same_num_classes_loads_the_head_too_and_lucid_names_are_detected(tmp_path):
    state = torchvision_file(tmp_path / "w.safetensors", num_classes=4)
    model, load = build(config(pretrained=str(tmp_path / "w.safetensors")))
    assert load.head_reset is None and load.tensors == len(state)
    np.testing.assert_array_equal(reference_state_dict(model)["fc.weight"], state["fc.weight"])
    lucid_names = {k: v.numpy() for k, v in model.state_dict().items()}
    assert detect_source(lucid_names) == "lucid" and detect_source(["conv1.0.weight", "bn1.weight"]) == "timm"
    save_file(lucid_names, str(tmp_path / "l.safetensors"))
    again, load = build(config(pretrained=str(tmp_path / "l.safetensors"), pretrained_source="lucid"))
    assert load.source == "lucid" and not load.detected
    for k, v in again.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), lucid_names[k], err_msg=k)


def test_weights_of_another_architecture_list_the_keys(tmp_path):
    torchvision_file(tmp_path / "w.safetensors", overrides={})  # a full-size ResNet-18 (3 channels, 7x7 stem)
    torchvision_file(tmp_path / "big.safetensors", num_classes=4, overrides={**TINY, "layers": [2, 1, 1, 1]})
    wrong = (r"(?s)model.pretrained = .*w.safetensors' \(torchvision names\) does not fit ResNet:\n"
             r".*shape mismatches \(\d+\): conv1.weight \(64, 3, 7, 7\) -> stem.conv1.weight \(64, 1, 3, 3\)")
    with pytest.raises(ValueError, match=wrong):
        build(config(pretrained=str(tmp_path / "w.safetensors")))
    with pytest.raises(ValueError, match=r"keys that map to no model tensor \(10\): layer1\.1\.bn1\.bias, .*layer1\.1\.conv1\.weight"):
        build(config(pretrained=str(tmp_path / "big.safetensors")))
    with pytest.raises(FileNotFoundError, match="model.pretrained: no weights file"):
        build(config(pretrained=str(tmp_path / "none.safetensors")))


def test_freeze_prefixes_and_backbone_lr(tmp_path):
    model, _ = build(config(freeze=["stem", "layer1"]))
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("stem.", "layer1.")) for n in frozen)
    assert isinstance(model.stem.bn1, FrozenBatchNorm2d) and isinstance(model.layer1[0].bn2, FrozenBatchNorm2d)
    assert type(model.layer2[0].bn1).__name__ == "BatchNormAct2d"  # not frozen: a BatchNorm with its ReLU
    assert list(model.state_dict()) == list(create_model("resnet_18", num_classes=4, **TINY).state_dict())
    cfg = config()
    cfg.optim.backbone_lr_scale = 0.1
    opt = build_optimizer(model, cfg.optim, 256)
    by_lr = {}
    for g in opt.param_groups:
        by_lr.setdefault(g["lr"], set()).update(id(p) for p in g["params"])
    head = {id(model.fc.weight), id(model.fc.bias)}
    assert by_lr[0.1] == head and len(by_lr) == 2 and opt.param_groups[0]["lr"] == 0.1
    backbone = {id(p) for n, p in model.named_parameters() if p.requires_grad and not n.startswith("fc.")}
    assert by_lr[0.1 * 0.1] == backbone  # frozen parameters are in no group
    with pytest.raises(ValueError, match=r"model.freeze: 'layer9' matches no parameter of ResNet \(top-level modules: stem, maxpool"):
        finetune.freeze(model, ["layer9"])
    with pytest.raises(ValueError, match="'maxpool' matches no parameter"):
        finetune.freeze(model, ["maxpool"])


def test_frozen_batchnorm_uses_running_statistics_in_train_mode():
    bn = lucid.nn.BatchNorm2d(3, dtype=lucid.float64)
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [4.0, 0.25, 1.0]
    bn.weight.data[...] = [1.0, 2.0, 3.0]
    frozen = FrozenBatchNorm2d.from_batchnorm(bn).train()
    data = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    x = lucid.tensor(data, requires_grad=True)
    y = frozen(x)
    mean, var, w = (t.detach().numpy()[:, None, None] for t in (bn.running_mean, bn.running_var, bn.weight))
    np.testing.assert_allclose(y.detach().numpy(), (data - mean) / np.sqrt(var + 1e-5) * w, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(w / np.sqrt(var + 1e-5), data.shape), rtol=1e-12)
    assert frozen.weight.grad is None and int(frozen.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(frozen.running_mean.numpy(), [0.5, -1.0, 2.0])
    from lucid.distributed import SyncBatchNorm

    assert not isinstance(SyncBatchNorm.convert_sync_batchnorm(frozen), SyncBatchNorm)


def test_fine_tuning_run_on_two_ranks_keeps_frozen_prefixes_bit_identical(tmp_path):
    state = torchvision_file(tmp_path / "w.safetensors")
    res = mpirun.launch(2, ["-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"',
                            "--set", f'model.pretrained="{tmp_path / "w.safetensors"}"', "--set", 'model.freeze=["stem", "layer1"]',
                            "--set", "optim.backbone_lr_scale=0.1", "--set", "run.max_steps=4"], timeout=180, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "classifier 'fc' re-initialised: the file's fc.weight has 7 classes, model.num_classes = 4" in res.stdout
    ckpt = os.path.join(tmp_path, "debug", "checkpoints", "step_00000004")
    from test_train_resume import checkpoint_tensors

    trained = {k[len("model/"):]: v for k, v in checkpoint_tensors(ckpt).items() if k.startswith("model/")}
    for key, value in state.items():
        lucid_key = "stem." + key if key.startswith(("conv1.", "bn1.")) else key
        if key.startswith(("conv1.", "bn1.", "layer1.")):
            np.testing.assert_array_equal(trained[lucid_key], value, err_msg=key)  # weights and BN statistics
        elif not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
            assert not np.array_equal(trained[lucid_key], value), key  # trained on
    with open(os.path.join(tmp_path, "debug", "metrics.jsonl")) as fh:
        loaded = [r for r in map(json.loads, fh) if r["kind"] == "pretrained"]
    assert loaded[0]["source"] == "torchvision" and loaded[0]["head"] == "fc"


def test_bad_freeze_prefix_fails_on_every_rank(tmp_path):
    res = mpirun.launch(2, ["-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"',
                            "--set", 'model.freeze=["layer9"]'], timeout=120, cwd=ROOT)
    assert res.returncode != 0 and "model.freeze: 'layer9' matches no parameter" in res.stderr


@pytest.mark.parametrize("data, message", [
    ({"model": {"pretrained_source": "keras"}}, r"model\.pretrained_source = 'keras' must be one of 'auto', 'torchvision'"),
    ({"model": {"freeze": ["stem", ""]}}, r"model\.freeze must be a list of module-name prefixes"),
    ({"optim": {"backbone_lr_scale": 0}}, r"optim\.backbone_lr_scale = 0\.0 must be > 0"),
    ({"optim": {"clip_grad_norm": -1}}, r"optim\.clip_grad_norm = -1\.0 must be >= 0"),
    ({"run": {"ema_decay": 1}}, r"run\.ema_decay = 1\.0 must be in \[0, 1\)"),
])
def test_bad_fine_tuning_keys_name_key_and_file(data, message):
    from lucid.train.config import ConfigError

    with pytest.raises(ConfigError, match="x.toml: " + message):
        config_from_dict(data, "x.toml")
