"""Parameter counts (BN buffers excluded) equal docs/design.md's table ("Model zoo numbers") and the reference libraries'."""
import numpy as np
import pytest

import lucid
from lucid.models import create_model


@pytest.fixture(autouse=True)
def _no_random_init(monkeypatch):
    """Counting needs shapes, not values: skip the random draws (the init is tested elsewhere)."""
    zeros = lambda shape, *args, **kwargs: np.zeros(shape, np.float32)  # noqa: E731
    monkeypatch.setattr(lucid.random, "normal_array", zeros)
    monkeypatch.setattr(lucid.random, "uniform_range_array", zeros)

# docs/design.md's table, then torchvision (resnet_101/152, wide_resnet_101, resnext_101_*), timm (resnet_200,
# resnest_50_4s2x40d/1s4x24d: timm's resnest50d_4s2x40d / resnest50d_1s4x24d) and the ResNeSt reference
# code (resnest_101/200/269). resnet_269 has no reference implementation; its count is that of the
# post-activation bottleneck layout [3, 30, 48, 8] built here.
PARAMETERS = {
    "resnet_18": 11_689_512, "resnet_34": 21_797_672, "resnet_50": 25_557_032, "wide_resnet_50": 68_883_240,
    "resnext_50_32x4d": 25_028_904, "resnest_14": 10_611_688, "resnest_26": 17_069_448,
    "resnest_50": 27_483_240,
    "resnet_101": 44_549_160, "resnet_152": 60_192_808, "wide_resnet_101": 126_886_696,
    "resnext_101_32x4d": 44_177_704, "resnext_101_32x8d": 88_791_336, "resnext_101_64x4d": 83_455_272,
    "resnet_200": 64_673_832, "resnest_50_4s2x40d": 30_417_592, "resnest_50_1s4x24d": 25_677_000,
    "resnest_101": 48_275_016, "resnest_200": 70_201_544, "resnest_269": 110_929_480,
    "resnet_269": 102_073_384,
}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


def test_num_classes_changes_only_the_classifier():
    model = create_model("resnet_50", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032 - 2048 * 990 - 990
