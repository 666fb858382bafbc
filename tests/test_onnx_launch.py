"""``python -m launch.export CKPT --format onnx``: the checkpoint's model, checked by onnxruntime."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lucid
from lucid.models import create_model
from lucid.onnx.checkpoint import model_from_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_export_checkpoint_as_onnx(tmp_path):
    res = run("launch.train", "--config", "configs/debug.toml", "--set", f'run.output_dir="{tmp_path}"',
              "--set", "run.max_steps=2", "--set", "run.epochs=1")
    assert res.returncode == 0, res.stderr
    ckpts = os.path.join(tmp_path, "debug", "checkpoints")
    out = tmp_path / "model.onnx"
    res = run("launch.export", ckpts, "--format", "onnx", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "ONNX opset 17, input (batch, 1, 16, 16)" in res.stdout

    from launch.export import consolidate

    weights, config = consolidate(ckpts)
    model = model_from_weights(weights, config)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 1, 16, 16)).astype(np.float32)
    (got,) = session.run(None, {"input": x})
    with lucid.no_grad():
        ref = model(lucid.tensor(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())

    res = run("launch.export", ckpts, "--format", "onnx", "--opset", "5", "--out", str(tmp_path / "old.onnx"))
    assert res.returncode == 2 and "opset_version must be an int in [9," in res.stderr and "got 5" in res.stderr
    assert not (tmp_path / "old.onnx").exists()


def test_lazy_model_from_weights():
    """d2l's lazy modules take their shapes from the weights."""
    source = create_model("d2l_resnet_18", num_classes=10)
    with lucid.no_grad():
        source(lucid.zeros(2, 1, 32, 32))
    weights = {k: v.detach().numpy() for k, v in source.state_dict().items()}
    model = model_from_weights(weights, {"model": {"name": "d2l_resnet_18", "num_classes": 10, "overrides": {}}})
    assert sum(p.numel() for p in model.parameters()) == 11_178_378
    x = lucid.tensor(np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32))
    source.eval()
    with lucid.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), source(x).numpy())
