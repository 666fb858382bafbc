"""Registries: an optimizer, LR schedule, data source or transform preset registered from
this test module is usable from a TOML run config; its config arguments are checked
against the constructor's signature, with errors naming the key, the file and the valid keys."""
import numpy as np
import pytest

import lucid
from lucid import data, nn
from lucid.data import transforms as T
from lucid.optim import Optimizer, create_optimizer, register_optimizer
from lucid.registry import Registry
from lucid.train.config import ConfigError, load_config
from lucid.train.data_setup import build_data
from lucid.train.data_sources import SOURCES
from lucid.train.optim_setup import build_optimizer, build_scheduler
from lucid.train.schedules import SCHEDULES


@register_optimizer("test_sign_sgd")
class SignSGD(Optimizer):
    """p -= lr * scale * sign(g): a deliberately simple optimizer defined outside lucid."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, scale: float = 1.0):
        if scale <= 0:
            raise ValueError(f"Invalid scale: {scale}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, scale=scale))

    def _update(self, p, grad, group, state):
        p.data -= group["lr"] * group["scale"] * np.sign(grad)


@SCHEDULES.register("test_halve_each_epoch")
def halve_each_epoch(optimizer, steps_per_epoch, total_steps, warmup_steps, factor: float = 0.5):
    return lucid.optim.lr_scheduler.StepLR(optimizer, step_size=steps_per_epoch, gamma=factor)


class Fill(T.Transform):
    """Every sample becomes a constant HWC float32 image: makes the preset visible in a batch."""

    def __init__(self, size, channels, value):
        self.shape, self.value = (size, size, channels), value

    def __call__(self, img, rng=None):
        return np.full(self.shape, self.value, np.float32)


@data.register_preset("test_fill")
def fill_preset(size: int, channels: int = 3, value: float = 0.25) -> T.Compose:
    return T.Compose([Fill(size, channels, value)])


@SOURCES.register("test_counting")
def counting(cfg, split, num_classes, seed, transform, length: int = 8):
    labels = np.arange(length) % num_classes
    images = np.zeros((length, cfg.image_size, cfg.image_size), np.uint8)
    return data.ArrayDataset(images, labels.astype(np.int64), transform=T.Compose([T.ToPILImage(), transform]))


def write(tmp_path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_registered_optimizer_and_schedule_from_toml(tmp_path):
    path = write(tmp_path, """
[optim]
name = "test_sign_sgd"
lr = 0.5
scale_lr = false
weight_decay = 0.0
args = { scale = 0.2 }

[schedule]
name = "test_halve_each_epoch"
args = { factor = 0.1 }

[run]
epochs = 3
""")
    cfg = load_config(path)
    model = nn.Linear(2, 1, bias=False)
    model.weight.data[...] = np.array([[1.0, -1.0]], np.float32)
    opt = build_optimizer(model, cfg.optim, global_batch=256)
    assert isinstance(opt, SignSGD) and opt.param_groups[0]["scale"] == 0.2
    sched = build_scheduler(opt, cfg.schedule, steps_per_epoch=2, epochs=3)
    lrs = []
    for _ in range(4):
        model.weight.grad = lucid.tensor(np.array([[3.0, -0.5]], np.float32))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.5, 0.5, 0.05, 0.05], rtol=1e-6)
    # sign steps of lr * scale: 2 x 0.1 + 2 x 0.01 = 0.22 down for w0, up for w1
    np.testing.assert_allclose(model.weight.data, [[1.0 - 0.22, -1.0 + 0.22]], rtol=1e-6)


def test_registered_preset_and_source_from_toml(tmp_path):
    path = write(tmp_path, """
[model]
num_classes = 3

[data]
source = "test_counting"
source_args = { length = 12 }
image_size = 6
channels = 1
train_preset = "test_fill"
train_preset_args = { value = 0.75 }
eval_preset = "test_fill"
batch_size = 4
workers = 0
""")
    cfg = load_config(path)
    run = build_data(cfg.data, cfg.model.num_classes, rank=0, world=1, seed=0)
    assert len(run.train_loader) == 3 and len(run.val_loader.dataset) == 12
    images, labels = next(iter(run.train_loader))
    assert images.shape == (4, 1, 6, 6) and np.all(images.numpy() == 0.75)
    val_images, val_labels = next(iter(run.val_loader))
    assert np.all(val_images.numpy() == 0.25)  # the preset's default value
    np.testing.assert_array_equal(val_labels.numpy(), [0, 1, 2, 0])


@pytest.mark.parametrize(
    "text, message",
    [
        ('[optim]\nname = "test_sign_sgd"\nargs = { scal = 1.0 }',
         r"run\.toml: unknown key optim\.args\.scal for optimizer 'test_sign_sgd' \(valid keys in \[optim\.args\]: scale\)"),
        ('[optim]\nname = "test_sign_sgd"\nargs = { scale = -1.0 }',
         r"run\.toml: optim\.args = \{scale = -1\.0\} rejected by optimizer 'test_sign_sgd': Invalid scale: -1\.0"),
        ('[optim]\nname = "test_sign_sgd"\nargs = { scale = "big" }', r"run\.toml: optim\.args\.scale must be of type float, got 'big'"),
        ('[optim]\nname = "lion"', r"run\.toml: optim\.name = 'lion' is not a registered optimizer \(valid: adamw, sgd, test_sign_sgd\)"),
        ('[optim]\nname = "adamw"\nargs = { momentum = 0.9 }',
         r"unknown key optim\.args\.momentum for optimizer 'adamw' \(valid keys in \[optim\.args\]: amsgrad, betas, eps, maximize\)"),
        ('[optim]\nname = "adamw"\nargs = { betas = [0.9] }', r"rejected by optimizer 'adamw': Invalid beta parameters"),
        ('[schedule]\nname = "multistep"\nargs = { milestones = [30, 10] }',
         r"schedule\.args = .* milestones must be increasing positive epochs"),
        ('[schedule]\nname = "test_halve_each_epoch"\nargs = { gamma = 0.1 }',
         r"unknown key schedule\.args\.gamma .*valid keys in \[schedule\.args\]: factor\)"),
        ('[data]\ntrain_preset = "test_fill"\ntrain_preset_args = { colour = 1 }',
         r"unknown key data\.train_preset_args\.colour for transform preset 'test_fill' "
         r"\(valid keys in \[data\.train_preset_args\]: value\)"),
        ('[data]\neval_preset = "blur"', r"data\.eval_preset = 'blur' is not a registered transform preset \(valid: .*test_fill"),
        ('[data]\nsource = "fake"\nsource_args = { samples = 3 }',
         r"unknown key data\.source_args\.samples for data source 'fake' "
         r"\(valid keys in \[data\.source_args\]: train_samples, val_samples\)"),
    ],
)
def test_config_errors_name_key_file_and_valid_keys(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_create_optimizer_and_registry_rules():
    p = nn.Parameter(lucid.zeros(3))
    opt = create_optimizer("sgd", [p], lr=0.1, momentum=0.5, nesterov=True)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["nesterov"]
    reg = Registry("widget", supplied=("x",))
    reg.register("a", lambda x, k=1: x + k)
    assert reg.build("a", 1, k=2) == 3 and reg.names() == ["a"]
    with pytest.raises(ValueError, match="a widget named 'a' is already registered"):
        reg.register("a", lambda x: x)
    with pytest.raises(ValueError, match="unknown widget 'b'; valid names: a"):
        reg.build("b", 1)
    reg.register("kw", lambda x, **anything: anything)
    reg.check("kw", {"whatever": 1}, "t.args")  # **kwargs: the entry decides
    with pytest.raises(ValueError, match=r"t\.args\.k must be of type int, got 1\.5"):
        reg.check("a", {"k": 1.5}, "t.args")
