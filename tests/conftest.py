"""Shared fixtures: the device parameter (gpu cases skip cleanly without CuPy/GPU)."""
import pytest

import lucid

DEVICES = [
    "cpu",
    pytest.param("gpu", marks=pytest.mark.skipif(not lucid.gpu_available(), reason="needs CuPy and a CUDA GPU")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run the test once per available device."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    lucid.manual_seed(0)
    yield
