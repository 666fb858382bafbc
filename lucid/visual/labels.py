"""The text of chart labels: attribute names, layer settings, parameter counts, captions.

A module is named by its attribute (``conv1``, ``layer3``) or, inside a Sequential, by
its container and index (``layer3[0]``, a run of repeats ``layer3[1-22]``). Convs and
pools add their kernel, stride and groups (``3×3 /2 · groups 32``), so a ResNeXt chart
differs from a ResNet one; a block drawn as one node lists the groups of its convs.
"""
from __future__ import annotations

from lucid.visual.kinds import layer_kind


def count_text(n: float) -> str:
    """1234 -> 1.23K, 25557032 -> 25.56M (parameters, MACs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def rgb(hex_colour: str) -> str:
    """#c53030 -> rgb(197,48,48): a colour Mermaid labels can hold ('#...;' reads as an entity)."""
    h = hex_colour.lstrip("#")
    return "rgb(" + ",".join(str(int(h[i:i + 2], 16)) for i in (0, 2, 4)) + ")"


def member_name(parent: str, name: str) -> str:
    """``conv1`` for an attribute, ``layer3[0]`` for the index of a Sequential (``[0]`` at the top)."""
    return f"{parent}[{name}]" if name.isdigit() else name


def run_name(parent: str, first: str, last: str) -> str:
    """``layer3[1-22]`` for a run of repeated Sequential members."""
    return f"{parent}[{first}-{last}]" if first.isdigit() and last.isdigit() else f"{first}-{last}"


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def settings(module) -> str:
    """Kernel, stride and groups of a conv or pool; the conv groups inside a block; "" otherwise."""
    kind = layer_kind(module)
    if kind in ("conv", "pool") and getattr(module, "kernel_size", None) is not None:
        kh, kw = _pair(module.kernel_size)
        parts = [f"{kh}×{kw}"]
        stride = _pair(getattr(module, "stride", 1) or 1)
        if stride != (1, 1):
            parts[0] += f" /{stride[0]}" if stride[0] == stride[1] else f" /{stride[0]}x{stride[1]}"
        if getattr(module, "groups", 1) > 1:
            parts.append(f"groups {module.groups}")
        return " · ".join(parts)
    if kind == "block":
        groups = sorted({m.groups for m in module.modules() if layer_kind(m) == "conv" and getattr(m, "groups", 1) > 1})
        return "grouped conv: groups " + ", ".join(map(str, groups)) if groups else ""
    return ""


def params_of(module) -> int:
    return sum(p.numel() for p in module.parameters())


def caption(text: str, colour: str | None) -> str:
    """A small second line of a label, coloured with rgb() and the colour last."""
    style = "font-size:11px;font-weight:400" + (f";color:{rgb(colour)}" if colour else "")
    return f"<br/><span style='{style}'>{text}</span>"
