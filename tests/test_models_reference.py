"""Models stay bit-identical and saved weights keep loading across refactorings of the model code.

The references (tests/model_reference.py, tests/data/) were computed before the blocks
took ``norm_layer`` / ``act_layer``: the default choice (BatchNorm2d + ReLU, fused as
BatchNormAct2d) must reproduce them to the last bit in float64, forward, backward and
running statistics, and the saved files (torchvision key names, a lucid state dict) must
load with strict key checks.
"""
import numpy as np
import pytest
from model_reference import (
    MODELS,
    REFERENCE,
    REFERENCE_MACHINE,
    TINY_CHECKPOINT,
    TINY_TORCHVISION,
    machine,
    run,
    tiny_eval_out,
    tiny_resnet,
)

import lucid
from lucid.models import load_pretrained


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_models_are_bit_identical_to_the_reference(reference, name):
    """Bit for bit on a machine with the reference's kernels; elsewhere (another OpenBLAS kernel
    or NumPy's AVX-512 loops sum in another order) outputs, gradients and buffers to 1e-9."""
    got = run(name)
    expected = {k[len(name) + 1:]: v for k, v in reference.items() if k.startswith(name + "/")}
    assert sorted(got) == sorted(expected)  # the same parameters and buffers, by name
    for key in ("train_out", "eval_out"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-9, atol=1e-12, err_msg=f"{name} {key}")
    for key in (k for k in expected if k.startswith("projection/")):
        (squares, dot), want = got[key][:2], expected[key]
        # atol: gradients that are 0 up to rounding (a bias before BatchNorm) stay below 1e-10
        np.testing.assert_allclose(squares, want[0], rtol=1e-9, atol=1e-20, err_msg=f"{name} {key}")
        assert abs(dot - want[1]) <= 1e-9 * want[2] + 1e-12, f"{name} {key}: {dot} != {want[1]}"
    if machine() == REFERENCE_MACHINE:
        for key in ("train_out", "eval_out"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name} {key}")
        changed = [k for k in expected if k.startswith("digest/") and str(got[k]) != str(expected[k])]
        assert not changed, f"{name}: not bit-identical: {changed}"


def test_saved_torchvision_weights_load_with_the_same_keys(reference):
    model = load_pretrained(tiny_resnet(), TINY_TORCHVISION, source="auto", strict=True)
    np.testing.assert_array_equal(tiny_eval_out(model), reference["tiny/eval_out"])


def test_saved_lucid_state_dict_loads_strictly(reference):
    state = lucid.load(TINY_CHECKPOINT)
    model = tiny_resnet()
    assert sorted(state) == sorted(model.state_dict())
    model.load_state_dict(state, strict=True)
    np.testing.assert_array_equal(tiny_eval_out(model), reference["tiny/eval_out"])
