"""Layer kinds (conv, norm, activation, pool, linear, ...) and their chart colours.

The kind comes from the class name, so lazy, synchronised and fused variants
(LazyConv2d, SyncBatchNorm, a fused ConvBN) are classified without importing them.
"""
from __future__ import annotations

ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "Hardswish", "Mish")

# kind -> (fill, stroke)
KIND_COLORS: dict[str, tuple[str, str]] = {
    "conv": ("#ffe8e8", "#c53030"),
    "norm": ("#e6fffa", "#2c7a7b"),
    "activation": ("#faf5ff", "#6b46c1"),
    "pool": ("#fefcbf", "#b7791f"),
    "linear": ("#ebf8ff", "#2b6cb0"),
    "io": ("#fff3cd", "#a67c00"),
    "block": ("#e2e8f0", "#64748b"),
    "merge": ("#fff5f7", "#b83280"),  # ops joining two or more inputs (add_relu), drawn as circles
    "other": ("#f7fafc", "#718096"),
}


def layer_kind(module) -> str:
    """One of KIND_COLORS' keys (never "io" or "merge", which mark the chart's ends and joining ops)."""
    name = type(module).__name__
    if "Conv" in name:
        return "conv"
    if "Norm" in name:
        return "norm"
    if name in ACTIVATIONS:
        return "activation"
    if "Pool" in name:
        return "pool"
    if "Linear" in name:
        return "linear"
    return "block" if any(True for _ in module.children()) else "other"
