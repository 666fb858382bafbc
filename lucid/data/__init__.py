"""lucid.data: datasets, Pillow transforms, a distributed sampler and a parallel DataLoader.

Every random augmentation choice comes from a generator derived from (seed, epoch,
sample index), so batches do not depend on the number of workers or ranks and a
resumed run sees the same augmentations. See docs/data.md.
"""
from lucid.data import transforms
from lucid.data.bad_images import BadImageWarning
from lucid.data.collate import default_collate
from lucid.data.dataset import ArrayDataset, Dataset
from lucid.data.fake import make_fake_image_folder, natural_image
from lucid.data.image import IMG_EXTENSIONS, ImageLoadError
from lucid.data.image_folder import ImageFolder
from lucid.data.loader import DataLoader
from lucid.data.mix import Mixup, mix_generator
from lucid.data.normalize_batch import normalize_batch
from lucid.data.presets import IMAGENET_MEAN, IMAGENET_STD, PRESETS, imagenet_eval, imagenet_train, preset, register_preset
from lucid.data.sampler import DistributedSampler
from lucid.data.seeding import sample_generator
from lucid.data.unreadable import IGNORE_INDEX, LeaveOutUnreadable
from lucid.data.workers import WorkerError

__all__ = [
    "ArrayDataset", "BadImageWarning", "DataLoader", "Dataset", "DistributedSampler", "IGNORE_INDEX", "IMAGENET_MEAN",
    "IMAGENET_STD", "IMG_EXTENSIONS", "ImageFolder", "ImageLoadError", "LeaveOutUnreadable", "Mixup", "PRESETS",
    "WorkerError", "default_collate", "imagenet_eval", "imagenet_train", "make_fake_image_folder", "mix_generator",
    "natural_image", "normalize_batch", "preset", "register_preset", "sample_generator", "transforms",
]
