"""Shared fixtures: the device parameter.

"cpu" always; "fakegpu" runs the GPU code paths on the strict NumPy-backed fake CuPy
(``tests/fake_cupy``) as device "gpu"; "gpu" needs CuPy and a CUDA GPU and skips
cleanly without them.
"""
import pytest

import lucid

DEVICES = [
    "cpu",
    "fakegpu",
    pytest.param("gpu", marks=pytest.mark.skipif(not lucid.gpu_available(), reason="needs CuPy and a CUDA GPU")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run the test once per device (the fake GPU is installed for the test's duration)."""
    if request.param != "fakegpu":
        yield request.param
        return
    import fakegpu

    with fakegpu.installed():
        lucid.manual_seed(0)
        yield "gpu"


@pytest.fixture
def fake_gpu():
    """The fake CuPy module in use for this test (two fake GPUs)."""
    import fakegpu

    with fakegpu.installed() as cp:
        lucid.manual_seed(0)
        yield cp


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    lucid.manual_seed(0)
    yield
