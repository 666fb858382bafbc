"""Gradient compression as a strategy object (Horovod's idea): what goes on the wire.

The reducer asks a compression for its wire dtype (None: the bucket itself is sent),
then calls ``compress`` when a bucket is complete and ``decompress`` when its sum
has landed. ``FP16Compression`` sends float16: values are pre-divided by the world
size first, and values beyond float16's range count as non-finite (the step is
skipped) instead of silently becoming infinities. New strategies subclass
``Compression``; ``get_compression`` accepts None, a name or an instance.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lucid.distributed.failure import scale_and_check


class Compression:
    """No compression: the bucket goes on the wire as it is."""

    name = "none"
    wire_dtype: Any = None
    limit: float | None = None  # |values| beyond it count as non-finite (they would overflow the wire)

    def compress(self, src, scale: float, out=None) -> Any:
        """Scale ``src`` in place (and cast it into ``out``); returns whether a value is non-finite."""
        return scale_and_check(src, scale, out=out, limit=self.limit)

    def decompress(self, wire, out) -> None:
        """The summed wire buffer back into the bucket (nothing to do without a separate wire)."""
        if wire is not None and wire is not out:
            from lucid._backend import get_array_module

            get_array_module(out).copyto(out, wire)

    def __repr__(self) -> str:
        return self.name


class FP16Compression(Compression):
    """Half the bytes: gradients travel as float16 (~3 significant digits)."""

    name = "fp16"
    wire_dtype = np.float16
    limit = 65504.0


COMPRESSIONS: dict[str, type[Compression]] = {"none": Compression, "fp16": FP16Compression}


def get_compression(compression: Any) -> Compression:
    if compression is None:
        return Compression()
    if isinstance(compression, Compression):
        return compression
    if isinstance(compression, str) and compression in COMPRESSIONS:
        return COMPRESSIONS[compression]()
    raise ValueError(
        f"compression must be None, a Compression or one of {', '.join(map(repr, COMPRESSIONS))}, got {compression!r}"
    )
