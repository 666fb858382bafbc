"""The config is read once and never changed: a resumed run that keeps the checkpoint's
global batch at another per-rank batch holds that batch in the Trainer, not in cfg."""
import os

from lucid.train.config import load_config
from lucid.train.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG = os.path.join(ROOT, "configs", "debug.toml")


def test_resume_keeps_checkpoint_batch_outside_the_config(tmp_path):
    common = [f'run.output_dir="{tmp_path}"', "run.progress=false", "run.max_steps=2", "run.epochs=1"]
    first = load_config(DEBUG, common)
    Trainer(first).fit()
    assert first.data.batch_size == 6
    cfg = load_config(DEBUG, common + ["data.batch_size=3"])
    before = cfg.to_dict()
    trainer = Trainer(cfg, resume="auto")
    assert (trainer.batch_size, trainer.global_batch) == (6, 6)  # the checkpoint's global batch, one rank
    assert trainer.data.train_loader.batch_size == 6
    assert cfg.data.batch_size == 3 and cfg.to_dict() == before
    assert trainer.state_dict()["config"]["data"]["batch_size"] == 3
