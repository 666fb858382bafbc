"""lucid.save / lucid.load: exact round trips of nested structures, the file format, bad input."""
import io
import json
import math
import struct

import numpy as np
import pytest

import lucid
from lucid import nn


def roundtrip(obj, tmp_path, **load_kw):
    path = tmp_path / "obj.lucid"
    lucid.save(obj, path)
    return lucid.load(path, **load_kw)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "int32", "uint8", "bool"])
def test_tensor_dtype_shape_values_exact(dtype, tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    t = lucid.tensor(a)
    back = roundtrip(t, tmp_path)
    assert type(back) is lucid.Tensor and back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back.numpy(), a)
    assert back.device == "cpu" and not back.requires_grad


def test_nested_state_with_every_supported_kind(tmp_path):
    obj = {
        "model": {"w": lucid.randn(2, 3, dtype="float64"), "n": lucid.tensor(5)},
        "ints": [1, -2, 10**20],
        "floats": (0.1, 1e-300, float("inf"), -float("inf"), float("nan")),
        "flags": [True, False, None],
        "text": "héllo",
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float32(2.5),
        7: {"int keys": {0: "a", 1: "b"}},
        (1, "x"): "tuple key",
        "$weird": 1,
        "empty": {},
        "empty_list": [],
        "zero_d": lucid.tensor(3.5, dtype="float16"),
        "zero_size": lucid.zeros(0, 4),
    }
    back = roundtrip(obj, tmp_path)
    assert set(back) == set(obj)
    np.testing.assert_array_equal(back["model"]["w"].numpy(), obj["model"]["w"].numpy())
    assert back["model"]["n"].dtype == np.int64 and back["model"]["n"].item() == 5
    assert back["ints"] == [1, -2, 10**20]
    f = back["floats"]
    assert isinstance(f, tuple) and f[:4] == (0.1, 1e-300, math.inf, -math.inf) and math.isnan(f[4])
    assert back["flags"] == [True, False, None] and back["text"] == "héllo"
    assert isinstance(back["array"], np.ndarray) and back["array"].dtype == np.int32
    np.testing.assert_array_equal(back["array"], obj["array"])
    assert isinstance(back["scalar"], np.float32) and back["scalar"] == np.float32(2.5)
    assert back[7] == {"int keys": {0: "a", 1: "b"}}
    assert back[(1, "x")] == "tuple key" and back["$weird"] == 1
    assert back["empty"] == {} and back["empty_list"] == []
    assert back["zero_d"].shape == () and back["zero_d"].dtype == np.float16 and back["zero_d"].item() == 3.5
    assert back["zero_size"].shape == (0, 4)


def test_non_contiguous_and_channels_last_arrays_saved_by_value(tmp_path):
    base = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 3)  # NHWC memory
    nchw_view = lucid.Tensor(base.transpose(0, 3, 1, 2))
    strided = lucid.Tensor(np.arange(20.0, dtype=np.float32)[::3])
    transposed = np.arange(12, dtype=np.float64).reshape(3, 4).T
    back = roundtrip({"cl": nchw_view, "strided": strided, "t": transposed}, tmp_path)
    np.testing.assert_array_equal(back["cl"].numpy(), base.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(back["strided"].numpy(), np.arange(20.0, dtype=np.float32)[::3])
    np.testing.assert_array_equal(back["t"], transposed)


def test_big_endian_array_round_trips_values(tmp_path):
    a = np.arange(5, dtype=">f4")
    back = roundtrip(a, tmp_path)
    np.testing.assert_array_equal(back, a)


def test_parameters_and_requires_grad_survive(tmp_path):
    p = nn.Parameter(lucid.ones(2))
    t = lucid.ones(3, requires_grad=True)
    frozen = nn.Parameter(lucid.ones(1), requires_grad=False)
    back = roundtrip([p, t, frozen], tmp_path)
    assert isinstance(back[0], nn.Parameter) and back[0].requires_grad
    assert type(back[1]) is lucid.Tensor and back[1].requires_grad
    assert isinstance(back[2], nn.Parameter) and not back[2].requires_grad


def test_same_object_twice_is_stored_once_and_shared_after_load(tmp_path):
    t = lucid.randn(4)
    back = roundtrip({"a": t, "b": [t]}, tmp_path)
    assert back["a"] is back["b"][0]
    back["a"].data[0] = 100.0  # loaded arrays are writable (optimizers update state in place)
    assert back["b"][0].data[0] == 100.0


def test_module_state_dict_round_trip_restores_model(tmp_path):
    lucid.manual_seed(0)
    src = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    src[1].num_batches_tracked.fill_(9)
    src[1].running_var.fill_(2.5)
    lucid.manual_seed(1)
    dst = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    dst.load_state_dict(roundtrip(src.state_dict(), tmp_path))
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert a.dtype == b.dtype, k
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert dst[1].num_batches_tracked.item() == 9


def test_file_is_standard_safetensors_with_lucid_metadata(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "m.lucid"
    lucid.save({"w": lucid.ones(2, 2), "step": 3}, path)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        names = list(f.keys())
        w = f.get_tensor("0")
    assert meta["format"] == "lucid" and meta["version"] == "1"
    assert json.loads(meta["structure"]) == {"w": {"$tensor": "0", "device": "cpu"}, "step": 3}
    assert names == ["0"] and w.shape == (2, 2)


def test_map_location(tmp_path):
    t = lucid.ones(2)
    assert roundtrip(t, tmp_path, map_location="cpu").device == "cpu"
    assert roundtrip(t, tmp_path, map_location={"gpu:0": "cpu"}).device == "cpu"
    with pytest.raises(ValueError, match="valid devices: cpu, gpu"):
        roundtrip(t, tmp_path, map_location="tpu:0")
    with pytest.raises(ValueError, match="valid devices"):
        roundtrip(t, tmp_path, map_location={"cpu": "gpu:x"})
    with pytest.raises(TypeError, match="map_location"):
        roundtrip(t, tmp_path, map_location=3)


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    lucid.save({"x": lucid.arange(5)}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(lucid.load(buf)["x"].numpy(), np.arange(5))


def test_unsupported_objects_name_their_place(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['a'\]\[1\] of type set"):
        lucid.save({"a": [1, {2}]}, tmp_path / "x")
    with pytest.raises(TypeError, match="uninitialized parameter"):
        lucid.save(nn.LazyLinear(3).state_dict(), tmp_path / "x")
    with pytest.raises(TypeError, match="Python objects"):
        lucid.save(np.array([object()]), tmp_path / "x")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "too short"),
        (b"\x80\x03}q\x00.", "too short"),  # a tiny pickle
        (b"PK\x03\x04" + b"\x00" * 200, "truncated"),  # a zip (torch.save): its bytes read as a huge header size
        (struct.pack("<Q", 10) + b"not json!!", "no safetensors header"),
        (struct.pack("<Q", 50) + b"{}", "truncated"),
    ],
)
def test_loading_a_non_lucid_file_names_the_path(content, reason, tmp_path):
    path = tmp_path / "bogus.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path} is not a lucid save file.*{reason}"):
        lucid.load(path)


def test_plain_safetensors_file_is_refused_with_advice(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "hf.safetensors"
    save_file({"w": np.ones(2, np.float32)}, str(path))
    with pytest.raises(ValueError, match="without lucid metadata; read plain safetensors"):
        lucid.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lucid.load(tmp_path / "nope.lucid")


def test_encoder_keeps_arrays_whose_paths_map_to_one_name():
    """Sharded checkpoints name arrays by path; two paths mapping to one name must not overwrite."""
    from lucid import serialization

    enc = serialization._Encoder(name_of=lambda where: "same")
    a, b = lucid.zeros(2), lucid.ones(3)
    structure = enc.encode({"a": a, "b": b}, "obj")
    assert len(enc.arrays) == 2
    back = serialization._Decoder(enc.arrays, lambda d: d).decode(structure)
    np.testing.assert_array_equal(back["a"].numpy(), [0, 0])
    np.testing.assert_array_equal(back["b"].numpy(), [1, 1, 1])
