"""Training: typed run configs and the Trainer loop behind ``python -m launch.train``."""
from lucid.train.config import ConfigError, TrainConfig, config_from_dict, load_config
from lucid.train.trainer import Trainer

__all__ = ["ConfigError", "TrainConfig", "Trainer", "config_from_dict", "load_config"]
