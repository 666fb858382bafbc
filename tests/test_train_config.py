"""Run configs: every shipped config validates; bad keys, types and ranges name the key and file."""
import glob
import os
import subprocess
import sys
import tomllib

import pytest

from lucid.train.config import ConfigError, config_from_dict, load_config, parse_override

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.toml")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_configs_validate_and_round_trip(path):
    cfg = load_config(path)
    assert config_from_dict(tomllib.loads(cfg.to_toml())) == cfg


def test_expected_configs_exist():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"fashion_mnist_resnet.toml", "d2l_resnet18_fashion_mnist.toml", "imagenet_resnet50.toml",
            "imagenet_resnext50.toml", "imagenet_resnest50.toml", "debug.toml"} <= names


def test_goyal_recipe():
    cfg = load_config(os.path.join(ROOT, "configs", "imagenet_resnet50.toml"))
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.args) == ("sgd", 0.1, {"momentum": 0.9, "nesterov": True})
    assert cfg.optim.scale_lr and cfg.optim.weight_decay == 1e-4 and not cfg.optim.decay_bn_and_bias
    assert (cfg.schedule.name, cfg.schedule.warmup_epochs) == ("multistep", 5)
    assert cfg.schedule.args == {"milestones": [30, 60, 80], "gamma": 0.1}
    assert cfg.run.epochs == 90 and cfg.data.train_preset == "imagenet_train"
    assert cfg.data.eval_preset_args == {"resize": 256} and cfg.data.image_size == 224


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"lrr": 0.1}},
         r"x\.toml: unknown key optim\.lrr \(valid keys in \[optim\]: args, backbone_lr_scale, clip_grad_norm, decay_bn_and_bias"),
        ({"optim": {"lr": "fast"}}, r"x\.toml: optim\.lr must be of type float, got 'fast'"),
        ({"optim": {"lr": -1}}, r"x\.toml: optim\.lr = -1\.0 must be > 0"),
        ({"run": {"epochs": True}}, r"run\.epochs must be of type int"),
        ({"data": {"on_error": "ignore"}}, r"data\.on_error = 'ignore' must be one of 'raise', 'skip'"),
        ({"models": {}}, r"unknown table \[models\]"),
        ({"schedule": {"name": "multistep", "args": {"milestones": [30, 10]}}}, r"milestones must be increasing"),
        ({"schedule": {"warmup_epochs": 5}, "run": {"epochs": 2}}, r"warmup_epochs = 5\.0 is longer than run\.epochs = 2"),
        ({"optim": {"name": "adamw", "args": {"betas": [0.9]}}}, r"optim\.args = .* Invalid beta parameters"),
    ],
)
def test_bad_values_name_key_and_file(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, "x.toml")


def test_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nname = "resnet_50"\n')
    cfg = load_config(str(path), ["optim.lr=0.5", "run.name=abc", "model.overrides.layers=[1, 1, 1, 1]", "run.sync_bn=false"])
    assert cfg.optim.lr == 0.5 and cfg.run.name == "abc" and cfg.model.overrides == {"layers": [1, 1, 1, 1]}
    assert cfg.run.sync_bn is False and cfg.model.name == "resnet_50"
    assert parse_override("data.root=/a b/c") == (["data", "root"], "/a b/c")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match=r"with --set overrides\): run\.epochs = 0 must be > 0"):
        load_config(str(path), ["run.epochs=0"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.toml"))


def test_cli_reports_config_errors_and_prints_config():
    cmd = [sys.executable, "-m", "launch.train", "--config", os.path.join(ROOT, "configs", "debug.toml")]
    bad = subprocess.run(cmd + ["--set", "optim.args.momentum=-0.5"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "rejected by optimizer 'sgd': Invalid momentum value: -0.5" in bad.stderr
    assert "debug.toml" in bad.stderr
    ok = subprocess.run(cmd + ["--print-config", "--device", "cpu"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and config_from_dict(tomllib.loads(ok.stdout)).model.name == "resnet_18"
