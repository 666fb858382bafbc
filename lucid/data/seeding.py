"""Per-sample random generators derived from (seed, epoch, sample index).

Every random choice an augmentation makes for one sample comes from the generator
of that sample's key, so it is the same whichever rank, worker or world size
processes the sample, and the same again after a resume.
"""
from __future__ import annotations

import numpy as np


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A PCG64 generator seeded by the triple (seed, epoch, dataset index)."""
    if seed < 0 or epoch < 0 or index < 0:
        raise ValueError(f"sample_generator: seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence((int(seed), int(epoch), int(index)))))


def fallback_generator() -> np.random.Generator:
    """The generator used when a transform is called without one: lucid's global CPU
    generator, so ``lucid.manual_seed`` makes stand-alone calls reproducible."""
    from lucid import random  # imported here: avoid importing lucid's core at module load

    return random.generator("cpu")
