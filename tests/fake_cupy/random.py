"""``cupy.random``: Generator over a bit generator, with CuPy's methods only (no permutation)."""
from __future__ import annotations

import numpy as np

from fake_cupy._core import call as _call


class _BitGenerator:
    def __init__(self, seed=None, *, size=-1):
        self._np = self._kind(np.random.SeedSequence(seed))


class XORWOW(_BitGenerator):
    _kind = np.random.PCG64


class Philox4x3210(_BitGenerator):
    _kind = np.random.Philox


class Generator:
    def __init__(self, bit_generator):
        self._g = np.random.Generator(bit_generator._np)

    def random(self, size=None, dtype=np.float64, out=None):
        return _call(self._g.random, (), {"size": size, "dtype": dtype, "out": out})

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return _call(self._g.standard_normal, (), {"size": size, "dtype": dtype, "out": out})

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _call(self._g.integers, (low, high), {"size": size, "dtype": dtype, "endpoint": endpoint})

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _call(lambda **k: self._g.uniform(low, high, size).astype(dtype), (), {})
