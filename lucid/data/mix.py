"""Mixup and CutMix with timm's batch-mode semantics, on NumPy batches.

One set of parameters per batch (mixup or CutMix, ``lam`` and the CutMix box), and
sample ``g`` of a batch of ``G`` is mixed with sample ``G - 1 - g`` (timm's
``x.flip(0)``). ``Mixup.params`` draws the parameters from a generator the caller
gives (the Trainer derives it from seed, step and micro-step: ``mix_generator``),
``Mixup.mix_images`` / ``Mixup.targets`` apply them given each sample's partner, so
the partner may come from another rank (lucid.train.batch_mix) and the result is the
same at every world size.

Soft targets (timm's ``mixup_target``): ``off = smoothing / num_classes``,
``on = 1 - smoothing + off``, ``lam * y + (1 - lam) * y_partner`` of the smoothed
one-hot rows; train with ``F.cross_entropy(logits, targets)`` (class probabilities).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIX_STREAM = 0x6D6978  # "mix": keeps these draws apart from other users of the run's seed


def mix_generator(seed: int, step: int, micro: int) -> np.random.Generator:
    """Counter-based generator of (seed, optimizer step, accumulation micro-step).

    Philox keyed by the seed; the step and micro-step are words of the starting
    counter, whose lowest word is left for the few draws one batch makes, so the
    streams of different (step, micro) never overlap and any step can be redrawn
    without replaying the ones before it (resume)."""
    if min(seed, step, micro) < 0:
        raise ValueError(f"mix_generator: seed, step and micro must be >= 0, got {(seed, step, micro)}")
    key = np.random.SeedSequence((int(seed), _MIX_STREAM)).generate_state(2, np.uint64)
    counter = np.array([0, int(micro), int(step), 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=counter))


@dataclass(frozen=True)
class MixParams:
    """What one batch gets: ``lam`` is the weight of each sample itself (for CutMix the
    area share outside the box, after clipping); ``box = (y0, y1, x0, x1)`` is the
    region pasted from the partner (CutMix only)."""

    lam: float = 1.0
    cutmix: bool = False
    box: tuple[int, int, int, int] | None = None

    @property
    def mixes(self) -> bool:
        return self.lam != 1.0


def rand_bbox(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox`` (no margin): a box of ``sqrt(1 - lam)`` of each side around a
    uniform centre, clipped to the image. Returns (y0, y1, x0, x1)."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(rng.integers(0, height))
    cx = int(rng.integers(0, width))
    y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + (cut_h + 1) // 2, 0, height)
    x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + (cut_w + 1) // 2, 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def cutmix_lam(height: int, width: int, box: tuple[int, int, int, int]) -> float:
    """The area-corrected lambda: the share of the image outside ``box`` (timm's
    ``correct_lam``), so a box clipped at the border weights the labels by what was pasted."""
    y0, y1, x0, x1 = box
    return 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)


def _check_alpha(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0:
        raise ValueError(f"Mixup: {name} must be >= 0, got {value}")
    return value


def _check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Mixup: {name} must be in [0, 1], got {value}")
    return value


class Mixup:
    """timm's ``Mixup`` in batch mode (parameters per batch, flip pairing).

    Args:
        mixup_alpha: Beta(alpha, alpha) of mixup's lambda; 0 turns mixup off.
        cutmix_alpha: Beta(alpha, alpha) of CutMix's lambda; 0 turns CutMix off.
        prob: probability that a batch is mixed at all.
        switch_prob: with both on, the probability of CutMix instead of mixup.
        label_smoothing: smoothing folded into the soft targets.
        num_classes: width of the soft targets (>= 2).
        correct_lam: CutMix's lambda from the clipped box's area (timm's default).
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        correct_lam: bool = True,
    ):
        self.mixup_alpha = _check_alpha("mixup_alpha", mixup_alpha)
        self.cutmix_alpha = _check_alpha("cutmix_alpha", cutmix_alpha)
        self.prob = _check_probability("prob", prob)
        self.switch_prob = _check_probability("switch_prob", switch_prob)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"Mixup: label_smoothing must be in [0, 1), got {label_smoothing}")
        if int(num_classes) < 2:
            raise ValueError(f"Mixup: mixing labels needs num_classes >= 2, got {num_classes}")
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)
        self.correct_lam = bool(correct_lam)

    @property
    def enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

    def params(self, rng: np.random.Generator, height: int, width: int) -> MixParams:
        """One batch's parameters, drawn in timm's order: mix or not (``prob``), CutMix or
        mixup (``switch_prob`` when both are on), lambda ~ Beta, then CutMix's box."""
        if not self.enabled or not rng.random() < self.prob:
            return MixParams()
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cutmix = bool(rng.random() < self.switch_prob)
        else:
            cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if not cutmix:
            return MixParams(lam)
        box = rand_bbox(height, width, lam, rng)
        if self.correct_lam:
            lam = cutmix_lam(height, width, box)
        return MixParams(lam, True, box)

    def mix_images(self, images: np.ndarray, partners: np.ndarray, p: MixParams) -> np.ndarray:
        """The mixed batch, a new array: ``images`` and ``partners`` are (N, H, W, C) with
        ``partners[i]`` the sample that ``images[i]`` is mixed with."""
        if images.shape != partners.shape:
            raise ValueError(f"Mixup: images {images.shape} and their partners {partners.shape} differ in shape")
        if not p.mixes:
            return images.copy()
        if p.cutmix:
            y0, y1, x0, x1 = p.box
            out = images.copy()
            out[:, y0:y1, x0:x1, :] = partners[:, y0:y1, x0:x1, :]
            return out
        dtype = images.dtype.type
        out = np.multiply(images, dtype(p.lam))
        out += partners * dtype(1.0 - p.lam)
        return out

    def smoothed_one_hot(self, labels: np.ndarray) -> np.ndarray:
        """(N, num_classes) float32 rows of ``off`` with ``on`` at each label."""
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"Mixup: labels must be class indices of shape (N,), got {labels.shape}")
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(f"Mixup: label {int(bad[0])} is outside [0, {self.num_classes}) (num_classes = {self.num_classes})")
        off = self.label_smoothing / self.num_classes
        on = 1.0 - self.label_smoothing + off
        rows = np.full((len(labels), self.num_classes), off, dtype=np.float32)
        rows[np.arange(len(labels)), labels] = on
        return rows

    def targets(self, labels: np.ndarray, partner_labels: np.ndarray, p: MixParams) -> np.ndarray:
        """Soft targets ``lam * y + (1 - lam) * y_partner`` (float32, (N, num_classes))."""
        y = self.smoothed_one_hot(labels)
        y *= np.float32(p.lam)
        y += self.smoothed_one_hot(partner_labels) * np.float32(1.0 - p.lam)
        return y

    def __repr__(self) -> str:
        return (
            f"Mixup(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, prob={self.prob}, "
            f"switch_prob={self.switch_prob}, label_smoothing={self.label_smoothing}, num_classes={self.num_classes})"
        )
