"""``conversion.json``: the record of a converted model directory, in one place.

Written by ``convert`` (:func:`conversion_record` + :func:`write_record`), rewritten by
``finetune`` (:func:`write_record`), updated by ``export`` (:func:`update_record`) and
read by everything that loads a model directory (:func:`read_record`). Every write goes
through a temporary file and a rename, so a reader never sees half a record.

What it holds (``format`` ``caffe2tf-conversion/1``): the source files and the
caffemodel's SHA-256, ``input_layout`` (``nhwc`` or ``nchw``: the layout of the
model's rank-4 inputs; rank-4 outputs are always NHWC), the inputs and outputs with
their Caffe and Keras shapes, the :class:`Preprocessing`, the folds, and for every
Caffe layer output the Keras tensor that holds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from caffe2tf import __version__
from caffe2tf.errors import Caffe2TFError
from caffe2tf.ir import Graph

CONVERSION_FORMAT = "caffe2tf-conversion/1"
RECORD_NAME = "conversion.json"

__all__ = ["CONVERSION_FORMAT", "ModelDirError", "Preprocessing", "RECORD_NAME", "conversion_record",
           "read_record", "update_record", "write_atomic", "write_record"]


class ModelDirError(Caffe2TFError):
    """A directory is not a (readable) converted model directory."""


@dataclass
class Preprocessing:
    """How raw images become the net's input, as the record keeps it (for `segment`,
    `serve`, `detect`, `export`): the mean per channel *in the net's channel order*
    (BGR when ``bgr``), ``None`` when not recorded."""

    mean: tuple[float, ...] | None = None
    scale: float = 1.0
    bgr: bool = True

    def to_json(self) -> dict:
        return {"mean": list(self.mean) if self.mean is not None else None, "scale": self.scale, "bgr": self.bgr}


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def conversion_record(original: Graph, graph: Graph, build, *, input_layout: str, fold: bool,
                      prototxt: str, caffemodel: str | None, preprocessing: Preprocessing | None) -> dict:
    """The content of conversion.json: inputs, outputs, and for every Caffe layer
    output the Keras tensor that holds it (``null`` where folding removed it)."""
    v2t: Mapping[str, str] = build.value_to_tensor_name
    folded_into = {f: n.name for n in graph.nodes for f in n.folded}
    surviving = {n.name for n in graph.nodes}
    layers = []
    for node in original.nodes:
        layers.append({
            "name": node.name, "type": node.type,
            "bottoms": [original.values[v].blob for v in node.inputs],
            "tops": [original.values[v].blob for v in node.outputs],
            "values": list(node.outputs),
            "shapes": [list(original.values[v].shape or ()) for v in node.outputs],
            "keras_tensors": [v2t.get(v) for v in node.outputs],
            "keras_layers": list(build.keras_layer_for_node.get(node.name, [])) if node.name in surviving else [],
            "folded_into": folded_into.get(node.name),
        })

    def io(values: Sequence[str], layout: str) -> list[dict]:
        out = []
        for v in values:
            shape = list(original.values[v].shape or ())
            keras_shape = [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 and layout == "nhwc" else shape
            out.append({"blob": original.values[v].blob, "value": v, "caffe_shape": shape,
                        "keras_shape": keras_shape, "keras_name": v2t.get(v)})
        return out

    return {
        "format": CONVERSION_FORMAT,
        "caffe2tf_version": __version__,
        "name": original.name,
        "source": {"prototxt": str(prototxt), "caffemodel": str(caffemodel) if caffemodel else None,
                   "caffemodel_sha256": _sha256(caffemodel) if caffemodel else None},
        "input_layout": input_layout,
        "tensor_layout": "rank-4 tensors are NHWC inside the model; other ranks keep Caffe's axis order",
        "folded": fold,
        "folds": {n.name: list(n.folded) for n in graph.nodes if n.folded},
        "inputs": io(original.inputs, input_layout),
        "outputs": io(original.outputs, "nhwc"),  # --input-layout changes only the inputs
        "keras_outputs": list(getattr(build.model, "output_names", []) or []),
        "preprocessing": preprocessing.to_json() if preprocessing else None,
        "layers": layers,
    }


def read_record(p: Path) -> dict:
    """``p/conversion.json``, checked to be a caffe2tf conversion record (else ModelDirError)."""
    p = Path(p)
    rec_path = p / RECORD_NAME
    if not p.is_dir():
        raise ModelDirError("no such directory", file=str(p))
    if not rec_path.is_file():
        raise ModelDirError("not a converted model directory (no conversion.json); make one with "
                            "`caffe2tf convert`", file=str(p))
    try:
        record = json.loads(rec_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"conversion.json is unreadable: {exc}", file=str(rec_path)) from None
    if not isinstance(record, dict) or not str(record.get("format", "")).startswith("caffe2tf-conversion/"):
        raise ModelDirError("conversion.json is not a caffe2tf conversion record", file=str(rec_path))
    return record


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(model_dir: Path, record: dict) -> None:
    """Write ``model_dir/conversion.json`` (atomically)."""
    write_atomic(Path(model_dir) / RECORD_NAME, (json.dumps(record, indent=1) + "\n").encode())


def update_record(model_dir: Path, change: Callable[[dict], None]) -> dict:
    """Read ``model_dir``'s record, let ``change`` edit it in place, write it back
    atomically; returns the new record."""
    record = read_record(Path(model_dir))
    change(record)
    write_record(Path(model_dir), record)
    return record
