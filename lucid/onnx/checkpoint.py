"""ONNX from exported weights and their run config (what ``launch.export --format onnx`` writes)."""
from __future__ import annotations

import numpy as np


def model_from_weights(weights: dict[str, np.ndarray], config: dict):
    """The run's model (``config["model"]``: name, num_classes, overrides) holding ``weights``, in eval mode.

    Lazy modules take their shapes from the weights; a key that does not fit is an error naming it.
    """
    import lucid
    from lucid.models import create_model

    spec = config["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], **spec.get("overrides", {}))
    dtype = next((a.dtype for a in weights.values() if np.issubdtype(a.dtype, np.floating)), np.dtype(np.float32))
    model = model.to(str(dtype))
    model.load_state_dict({k: lucid.tensor(v) for k, v in weights.items()})
    return model.eval()


def export_run_weights(weights: dict[str, np.ndarray], config: dict, out: str, opset_version: int = 17) -> tuple:
    """Write the model of ``config`` with ``weights`` as ONNX to ``out``; the example input is
    (1, data.channels, data.image_size, data.image_size) and the batch axis stays dynamic.
    Returns the input shape."""
    import lucid

    model = model_from_weights(weights, config)
    data = config["data"]
    shape = (1, int(data["channels"]), int(data["image_size"]), int(data["image_size"]))
    dtype = next(iter(p.dtype for p in model.parameters()), "float32")
    lucid.onnx.export(model, lucid.zeros(*shape, dtype=dtype), out, opset_version=opset_version)
    return shape
