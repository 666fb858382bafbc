"""Reference results of small float64 models: refactoring the model code must keep every
default model bit-identical (tests/test_models_reference.py uses this module).

``python tests/model_reference.py`` rewrites ``tests/data/model_reference.npz`` and the
saved tiny ResNet (``tests/data/resnet_tiny.*``) from the code as it is; the stored files
were computed at commit da7b4af, before the blocks took ``norm_layer`` / ``act_layer``.
Per model the npz holds the train-mode output and the eval-mode output after that step
in full, and a SHA-256 (``digest/...``) of the gradients of ``(out * probe).sum()`` with
respect to the input and each parameter and of each buffer after the step. Weights,
input and probe are drawn from seeded NumPy generators (``weights``, ``run``).

Bits are a property of the machine too: another CPU's OpenBLAS kernel or NumPy SIMD loops
sum in another order. So each gradient and buffer also has a ``projection/...`` (see
``projection``), added at a commit whose models were bit-identical to the stored digests
on the machine that computed them; the test compares bits on a machine with that one's
kernels (``REFERENCE_MACHINE``), and outputs and projections to 1e-9 everywhere.
"""
from __future__ import annotations

import hashlib
import os
import zlib

import numpy as np

import lucid
from lucid.models import D2LResNet, create_model, load_pretrained, reference_state_dict

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
REFERENCE = os.path.join(DATA, "model_reference.npz")
TINY_TORCHVISION = os.path.join(DATA, "resnet_tiny_torchvision.safetensors")  # torchvision key names
TINY_CHECKPOINT = os.path.join(DATA, "resnet_tiny_state_dict.lucid")  # lucid.save(model.state_dict())
NUM_CLASSES = 5

# name -> (factory, overrides, input shape)
MODELS = {
    "resnet_basic": ("resnet_18", {"layers": [1, 1, 1], "channels": (8, 16, 16), "stem_width": 8}, (2, 3, 32, 32)),
    "resnet_cifar": ("resnet_34", {"layers": [2, 1], "channels": (8, 16), "stem_width": 8, "stem_type": "cifar"},
                     (2, 3, 16, 16)),
    "resnet_bottleneck": ("resnet_50", {"layers": [2, 1, 1], "channels": (4, 8, 8), "stem_width": 8}, (2, 3, 32, 32)),
    "wide_resnet": ("wide_resnet_50", {"layers": [1, 1], "channels": (4, 8), "stem_width": 8}, (2, 3, 32, 32)),
    "resnext": ("resnext_50_32x4d", {"layers": [1, 1], "channels": (16, 32), "stem_width": 8}, (2, 3, 32, 32)),
    "resnest": ("resnest_14", {"layers": [1, 2], "channels": (16, 32), "stem_width": 8}, (2, 3, 32, 32)),
    "resnest_radix1": ("resnest_50_1s4x24d", {"layers": [1, 1], "channels": (16, 32), "stem_width": 8},
                       (2, 3, 32, 32)),
    "d2l": ("d2l", {}, (2, 1, 32, 32)),
}


def build(name: str):
    """A fresh float64 model ``name`` (d2l's lazy modules materialised) and its weight naming."""
    factory, overrides, shape = MODELS[name]
    if factory == "d2l":
        model = D2LResNet(((1, 64), (1, 8)), num_classes=NUM_CLASSES)
        model(lucid.zeros(*shape))
        return model.to(lucid.float64), "lucid"
    return create_model(factory, num_classes=NUM_CLASSES, **overrides).to(lucid.float64), "torchvision"


def tiny_resnet():
    """The model of the saved files: a BasicBlock ResNet, layers [1, 1], widths (8, 16)."""
    return create_model("resnet_18", num_classes=NUM_CLASSES, layers=[1, 1], channels=(8, 16),
                        stem_width=8).to(lucid.float64)


def weights(model, naming: str, seed: int) -> dict[str, np.ndarray]:
    """Every parameter and buffer drawn from ``seed`` (fan-in scaled weights, non-trivial BN state)."""
    rng = np.random.default_rng(seed)
    state = reference_state_dict(model, naming)
    for key, value in sorted(state.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(3, dtype=np.int64)
        elif key.endswith("running_var"):
            state[key] = np.abs(rng.standard_normal(value.shape)) + 0.5
        elif value.ndim == 1:  # BN weight, bias, running_mean; conv / linear bias
            state[key] = 0.3 * rng.standard_normal(value.shape) + (1.0 if key.endswith("bn1.weight") else 0.0)
        else:
            state[key] = rng.standard_normal(value.shape) / np.sqrt(np.prod(value.shape[1:]))
    return state


def digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


# The kernels of the machine that computed the stored digests (AMD EPYC Zen 3).
REFERENCE_MACHINE = "openblas Haswell, numpy AVX2"


def machine() -> str:
    """The kernels that decide this machine's float64 bits: OpenBLAS's, and NumPy's SIMD loops."""
    from threadpoolctl import threadpool_info

    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    blas = sorted({i.get("architecture") or "?" for i in threadpool_info() if i.get("internal_api") == "openblas"})
    return f"openblas {'/'.join(blas)}, numpy {'AVX512' if __cpu_features__.get('AVX512_SKX') else 'AVX2'}"


def projection(a: np.ndarray, key: str) -> np.ndarray:
    """(sum of squares, dot product with a standard normal vector seeded by ``key``, the bound
    |a| |probe| of that product) of ``a``: numbers that any change of ``a`` beyond rounding
    moves, compared with a tolerance (relative to the bound for the dot product, which may
    cancel) where the bits cannot be (another CPU's BLAS and NumPy kernels round differently)."""
    flat = np.asarray(a, np.float64).ravel()
    probe = np.random.default_rng(zlib.crc32(key.encode())).standard_normal(flat.size)
    return np.array([flat @ flat, flat @ probe, np.sqrt((flat @ flat) * (probe @ probe))])


def run(name: str) -> dict[str, np.ndarray]:
    """Build ``name``, load its seeded weights, do one train-mode step and one eval forward."""
    model, naming = build(name)
    load_pretrained(model, weights(model, naming, seed=sorted(MODELS).index(name)), source=naming)
    rng = np.random.default_rng(100 + sorted(MODELS).index(name))
    shape = MODELS[name][2]
    x, probe = rng.standard_normal(shape), rng.standard_normal((shape[0], NUM_CLASSES))
    model.train()
    inp = lucid.tensor(x, requires_grad=True)
    out = model(inp)
    (out * lucid.tensor(probe)).sum().backward()
    result = {"train_out": out.detach().numpy()}
    arrays = {"grad_input": inp.grad.numpy()}
    arrays.update({f"grad/{key}": p.grad.numpy() for key, p in model.named_parameters()})
    arrays.update({f"buffer/{key}": np.asarray(b.numpy()) for key, b in model.named_buffers()})
    for key, a in arrays.items():
        result[f"digest/{key}"] = np.array(digest(a))
        result[f"projection/{key}"] = projection(a, key)
    model.eval()
    with lucid.no_grad():
        result["eval_out"] = model(lucid.tensor(x)).numpy()
    return result


def tiny_input() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((2, 3, 16, 16))


def tiny_eval_out(model) -> np.ndarray:
    model.eval()
    with lucid.no_grad():
        return model(lucid.tensor(tiny_input())).numpy()


def write() -> None:
    from safetensors.numpy import save_file

    arrays = {}
    for name in MODELS:
        arrays.update({f"{name}/{k}": v for k, v in run(name).items()})
    model = tiny_resnet()
    state = weights(model, "torchvision", seed=99)
    save_file(state, TINY_TORCHVISION)
    load_pretrained(model, state, source="torchvision")
    lucid.save(model.state_dict(), TINY_CHECKPOINT)
    arrays["tiny/eval_out"] = tiny_eval_out(model)
    np.savez_compressed(REFERENCE, **arrays)


if __name__ == "__main__":
    write()
