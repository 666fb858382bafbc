"""GPU device handling on the fake CuPy device: "gpu:N" placement, random numbers, errors."""
import numpy as np
import pytest

import lucid
from lucid import _backend, nn, optim


def test_fake_device_is_strict(fake_gpu):
    cp = fake_gpu
    a = cp.ones(3)
    assert not isinstance(a, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    assert not hasattr(a.flags, "writeable")
    assert not hasattr(cp.random.Generator(cp.random.XORWOW(0)), "permutation")
    with cp.cuda.Device(1):
        b = cp.ones(3)
    with pytest.raises(ValueError, match="different from the current device"):
        a + b
    before = cp._STATS.syncs
    float(a.sum())
    a.get()
    assert cp._STATS.syncs == before + 2
    k = cp._STATS.kernels
    (a * 2 + 1).sum()
    assert cp._STATS.kernels == k + 3


@pytest.mark.parametrize("make", [
    lambda d: lucid.zeros(2, 3, device=d),
    lambda d: lucid.ones(4, device=d),
    lambda d: lucid.full((2,), 1.5, device=d),
    lambda d: lucid.arange(5, device=d),
    lambda d: lucid.randn(3, device=d),
    lambda d: lucid.rand(3, device=d),
    lambda d: lucid.randint(0, 9, (4,), device=d),
    lambda d: lucid.randperm(6, device=d),
    lambda d: lucid.tensor([1.0, 2.0], device=d),
])
def test_allocations_for_gpu_n_land_on_gpu_n(fake_gpu, make):
    t = make("gpu:1")
    assert t.device == "gpu:1" and t.data.device.id == 1
    assert fake_gpu.cuda.Device().id == 0  # the current device is left as it was


def test_model_trains_on_gpu_1_while_gpu_0_is_current(fake_gpu):
    lucid.manual_seed(0)
    cpu = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 25, 2))
    x = lucid.randn(2, 3, 5, 5)
    y = lucid.tensor([0, 1])
    ref = nn.functional.cross_entropy(cpu(x), y)
    ref.backward()
    model = cpu.to("gpu:1")
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(x.to("gpu:1")), y.to("gpu:1"))
    loss.backward()
    assert abs(loss.item() - ref.item()) < 1e-5
    g = [p.grad for p in model.parameters()]
    assert all(t.device == "gpu:1" for t in g)
    for opt in (optim.SGD(model.parameters(), lr=0.1, momentum=0.9), optim.AdamW(model.parameters(), lr=0.1)):
        opt.step()
        opt.step()
    assert all(p.device == "gpu:1" and p.data.device.id == 1 for p in model.parameters())


def test_randperm_on_gpu_is_a_permutation(fake_gpu):
    p = lucid.randperm(50, device="gpu").numpy()
    assert sorted(p.tolist()) == list(range(50)) and p.tolist() != list(range(50))


def test_gpu_rng_state_restores_exactly(fake_gpu):
    lucid.manual_seed(3)
    lucid.randn(4, device="gpu")
    state = lucid.random.get_rng_state()
    a = [lucid.randn(5, device="gpu").numpy(), lucid.rand(2, device="gpu:1").numpy(), lucid.randn(3).numpy()]
    lucid.manual_seed(99)
    lucid.randn(7, device="gpu")
    lucid.random.set_rng_state(state)
    b = [lucid.randn(5, device="gpu").numpy(), lucid.rand(2, device="gpu:1").numpy(), lucid.randn(3).numpy()]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_mixed_devices_in_one_op_name_both(fake_gpu):
    with pytest.raises(RuntimeError, match=r"gpu:0 and gpu:1"):
        lucid.ones(2, device="gpu:0") + lucid.ones(2, device="gpu:1")


def test_gpu_index_past_the_count(fake_gpu):
    with pytest.raises(ValueError, match=r"'gpu:2' does not exist: 2 GPU\(s\)"):
        lucid.zeros(2, device="gpu:2")


def test_unparseable_device():
    with pytest.raises(ValueError, match="unknown device 'gpux'"):
        lucid.zeros(2, device="gpux")


@pytest.mark.parametrize("devices, version, match", [
    (0, "14.0.0", "no CUDA device"),
    (2, "12.3.0", r"CuPy 12.3.0 is too old; lucid needs CuPy >= 13"),
])
def test_gpu_unusable_says_why(monkeypatch, devices, version, match):
    import fake_cupy
    from fake_cupy import _core

    monkeypatch.setitem(__import__("sys").modules, "cupy", fake_cupy)
    monkeypatch.setattr(fake_cupy, "__version__", version)
    monkeypatch.setattr(_core, "DEVICE_COUNT", [devices])
    monkeypatch.setattr(_backend, "_cupy", None)
    monkeypatch.setattr(_backend, "_cupy_error", None)
    assert not lucid.gpu_available()
    with pytest.raises(RuntimeError, match=match):
        lucid.zeros(1, device="gpu")


def test_cupy_not_installed(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)
    monkeypatch.setattr(_backend, "_cupy", None)
    monkeypatch.setattr(_backend, "_cupy_error", None)
    with pytest.raises(RuntimeError, match=r"CuPy is not installed .*pip install -e '\.\[gpu\]'"):
        lucid.zeros(1, device="gpu")


def test_run_device_validated_at_config_load():
    from lucid.train.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"run.device = 'cuda' must be one of 'cpu', 'gpu'"):
        config_from_dict({"run": {"device": "cuda"}}, source="x.toml")
    assert config_from_dict({"run": {"device": "gpu"}}).run.device == "gpu"


def test_run_device_gpu_without_gpu_fails_loudly(monkeypatch):
    import lucid.distributed as dist

    monkeypatch.setitem(__import__("sys").modules, "cupy", None)
    monkeypatch.setattr(_backend, "_cupy", None)
    monkeypatch.setattr(_backend, "_cupy_error", None)
    assert dist.device() == "cpu"
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        dist.device(require_gpu=True)


@pytest.mark.parametrize("var", ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"])
def test_gpu_selected_before_mpi_init_from_launcher_env(fake_gpu, monkeypatch, var):
    from lucid.distributed import local_gpu

    monkeypatch.delitem(__import__("sys").modules, "mpi4py.MPI", raising=False)
    assert local_gpu.select_before_mpi_init({var: "3"}) == 1  # local rank 3 on 2 GPUs
    assert fake_gpu.cuda.Device().id == 1
    assert local_gpu.select_before_mpi_init({}) is None
    with pytest.raises(ValueError, match=rf"\${var} must be an integer local rank, got 'x'"):
        local_gpu.select_before_mpi_init({var: "x"})


def test_moving_between_gpus_copies_to_the_target_device(fake_gpu):
    """gpu:0 -> gpu:1 is a peer copy: the result lives on device 1 and owns its memory."""
    lucid.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)).to("gpu:0")
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    moved = model.to("gpu:1")
    for k, v in moved.state_dict().items():
        assert v.device == "gpu:1" and v.data.device.id == 1, k
        np.testing.assert_array_equal(v.numpy(), before[k])
    t0 = lucid.arange(4.0, device="gpu:0")
    t1 = t0.to("gpu:1")
    assert t1.device == "gpu:1" and t1.data.device.id == 1 and t0.data.device.id == 0
    assert t1.data.data.ptr != t0.data.data.ptr  # a copy, not gpu:0's memory relabelled
    np.testing.assert_array_equal(t1.numpy(), [0.0, 1.0, 2.0, 3.0])
    out = moved(lucid.randn(4, 3, 5, 5, device="gpu:1"))  # runs on device 1 without a mixed-device error
    assert out.device == "gpu:1"
