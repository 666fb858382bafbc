"""nn / optim / save-load on every available device (the "gpu" cases skip without CuPy and a GPU)."""
import numpy as np

import lucid
from lucid import nn, optim


def _np(t):
    return lucid._backend.asnumpy(t.detach().data)


def test_module_to_device_and_forward(device):
    lucid.manual_seed(0)
    cpu_model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x = lucid.randn(6, 4)
    expected = _np(cpu_model(x))
    model = cpu_model.to(device)
    assert all(p.device == lucid._backend.parse_device(device) for p in model.parameters())
    out = model(x.to(device))
    assert out.device == lucid._backend.parse_device(device)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-6)
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


def test_layers_built_on_device(device):
    lin = nn.Linear(3, 2, device=device)
    assert lin.weight.device == lucid._backend.parse_device(device)
    assert lin(lucid.randn(2, 3, device=device)).shape == (2, 2)


def test_optimizer_steps_match_cpu(device):
    results = []
    for dev in ("cpu", device):
        lucid.manual_seed(1)
        model = nn.Linear(8, 3).to(dev)
        sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        lucid.manual_seed(2)
        x, y = lucid.randn(16, 8).to(dev), lucid.randint(0, 3, (16,)).to(dev)
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(x), y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
        adam = optim.AdamW(model.parameters(), lr=0.01, amsgrad=True)
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(x), y)
            adam.zero_grad()
            loss.backward()
            adam.step()
        results.append([_np(p) for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_save_load_keeps_or_maps_device(device, tmp_path):
    dev = lucid._backend.parse_device(device)
    t = lucid.randn(3, 4).to(device)
    lucid.save({"t": t}, tmp_path / "t.lucid")
    back = lucid.load(tmp_path / "t.lucid")["t"]
    assert back.device == dev
    np.testing.assert_array_equal(_np(back), _np(t))
    assert lucid.load(tmp_path / "t.lucid", map_location="cpu")["t"].device == "cpu"


def test_load_state_dict_across_devices(device):
    src = nn.Linear(3, 3)
    dst = nn.Linear(3, 3).to(device)
    dst.load_state_dict(src.state_dict())
    assert dst.weight.device == lucid._backend.parse_device(device)
    np.testing.assert_array_equal(_np(dst.weight), _np(src.weight))
