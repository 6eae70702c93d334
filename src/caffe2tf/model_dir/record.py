"""``conversion.json``: the record of a converted model directory, in one place.

Written by ``convert`` (:func:`conversion_record` + :func:`write_record`), rewritten by
``finetune`` (:func:`write_record`), updated by ``export`` (:func:`update_record`) and
read by everything that loads a model directory (:func:`read_record`). Every write goes
through a temporary file and a rename, so a reader never sees half a record.

What it holds (``format`` ``caffe2tf-conversion/1``), as the typed
:class:`ConversionRecord`: the source files and the caffemodel's SHA-256,
``input_layout`` (``nhwc`` or ``nchw``: the layout of the model's rank-4 inputs; rank-4
outputs are always NHWC), the inputs and outputs with their Caffe and Keras shapes
(:class:`TensorRecord`), the :class:`~caffe2tf.model_dir.preprocessing.Preprocessing`
(mean in the net's channel order), the folds, for every Caffe layer output the Keras
tensor that holds it (:class:`LayerRecord`), and what later steps add: ``class_names``
(``convert --classes``), ``timings_s``, ``finetuned``, ``exports`` (``export``).

The JSON keeps the keys and order ``convert`` has always written. Keys this version does
not know (written by a newer one) are kept in ``extra`` at every level and written back,
so a read-update-write round trip loses nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from caffe2tf import __version__
from caffe2tf.errors import Caffe2TFError
from caffe2tf.ir import Graph
from caffe2tf.model_dir.preprocessing import Preprocessing

CONVERSION_FORMAT = "caffe2tf-conversion/1"
RECORD_NAME = "conversion.json"
TENSOR_LAYOUT = "rank-4 tensors are NHWC inside the model; other ranks keep Caffe's axis order"

__all__ = ["CONVERSION_FORMAT", "ConversionRecord", "LayerRecord", "ModelDirError", "Preprocessing", "RECORD_NAME",
           "SourceFiles", "TensorRecord", "conversion_record", "read_record", "update_record", "write_atomic",
           "write_record"]


class ModelDirError(Caffe2TFError):
    """A directory is not a (readable) converted model directory."""


def _known_and_extra(cls: type, data: Mapping[str, Any]) -> tuple[dict, dict]:
    """``data`` split into the keys that are fields of ``cls`` and the rest (kept as they are)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return ({k: v for k, v in data.items() if k in names},
            {k: v for k, v in data.items() if k not in names})


def _plain(obj: Any, names: Sequence[str]) -> dict:
    """``obj``'s fields ``names`` in that order, then its ``extra`` keys."""
    out = {n: getattr(obj, n) for n in names}
    out.update({k: v for k, v in obj.extra.items() if k not in out})
    return out


@dataclass
class SourceFiles:
    """What was converted: the prototxt, the caffemodel (``None`` without weights) and its SHA-256."""

    prototxt: str | None = None
    caffemodel: str | None = None
    caffemodel_sha256: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping | None) -> "SourceFiles":
        known, extra = _known_and_extra(cls, data or {})
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        return _plain(self, ("prototxt", "caffemodel", "caffemodel_sha256"))


@dataclass
class TensorRecord:
    """One model input or output: its Caffe blob and IR value, its shape in Caffe's (NCHW) and
    the Keras model's layout, and the Keras tensor's name."""

    blob: str = ""
    value: str | None = None
    caffe_shape: list = field(default_factory=list)
    keras_shape: list = field(default_factory=list)
    keras_name: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping) -> "TensorRecord":
        known, extra = _known_and_extra(cls, data)
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        return _plain(self, ("blob", "value", "caffe_shape", "keras_shape", "keras_name"))


@dataclass
class LayerRecord:
    """One Caffe layer: its blobs, IR values and shapes, the Keras tensors holding its tops
    (``None`` where folding removed them), its Keras layers and what it was folded into."""

    name: str = "?"
    type: str = "?"
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    shapes: list[list] = field(default_factory=list)
    keras_tensors: list[str | None] = field(default_factory=list)
    keras_layers: list[str] = field(default_factory=list)
    folded_into: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping) -> "LayerRecord":
        known, extra = _known_and_extra(cls, data)
        known = {k: ([] if v is None and k not in ("name", "type", "folded_into") else v) for k, v in known.items()}
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        return _plain(self, ("name", "type", "bottoms", "tops", "values", "shapes", "keras_tensors",
                             "keras_layers", "folded_into"))


#: written after the layers, and only when set (``None``)
_OPTIONAL = ("class_names", "timings_s", "finetuned", "output_layout")


@dataclass
class ConversionRecord:
    """``conversion.json``, typed (see the module doc). ``extra``: keys this version does not know."""

    format: str = CONVERSION_FORMAT
    caffe2tf_version: str | None = None
    name: str | None = None
    source: SourceFiles = field(default_factory=SourceFiles)
    input_layout: str = "nhwc"
    tensor_layout: str = TENSOR_LAYOUT
    folded: bool | None = None
    folds: dict[str, list[str]] = field(default_factory=dict)
    inputs: list[TensorRecord] = field(default_factory=list)
    outputs: list[TensorRecord] = field(default_factory=list)
    keras_outputs: list[str] = field(default_factory=list)
    preprocessing: Preprocessing | None = None  # None: not recorded
    layers: list[LayerRecord] = field(default_factory=list)
    class_names: list[str] | None = None  # `convert --classes`
    timings_s: dict[str, float] | None = None  # seconds per conversion stage
    finetuned: dict | None = None  # how `finetune` made this directory
    exports: dict[str, dict] = field(default_factory=dict)  # e.g. {"tflite": {file name: entry}} (`export`)
    output_layout: str | None = None  # "nchw": rank-4 outputs are NCHW (never written by convert)
    extra: dict = field(default_factory=dict)

    @property
    def input_nchw(self) -> bool:
        """The model's rank-4 inputs are NCHW (``convert --input-layout nchw``)."""
        return self.input_layout == "nchw"

    @property
    def output_nchw(self) -> bool:
        """Rank-4 outputs are NCHW: only when the record says ``output_layout: "nchw"``
        (inside a converted model they are always NHWC, ``tensor_layout``)."""
        return self.output_layout == "nchw"

    @classmethod
    def from_json(cls, data: Mapping) -> "ConversionRecord":
        """The record of ``data`` (``json.loads`` of conversion.json); missing keys take the
        defaults, unknown ones go to ``extra``. Does not check ``format`` (:func:`read_record` does)."""
        known, extra = _known_and_extra(cls, data)
        known["source"] = SourceFiles.from_json(known.get("source"))
        known["folds"] = {k: list(v) for k, v in (known.get("folds") or {}).items()}
        for key in ("inputs", "outputs"):
            known[key] = [TensorRecord.from_json(t) for t in known.get(key) or []]
        known["layers"] = [LayerRecord.from_json(layer) for layer in known.get("layers") or []]
        known["keras_outputs"] = list(known.get("keras_outputs") or [])
        pre = known.get("preprocessing")
        known["preprocessing"] = Preprocessing.from_json(pre) if pre is not None else None
        if known.get("class_names") is not None:
            known["class_names"] = list(known["class_names"])
        known["exports"] = dict(known.get("exports") or {})
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        """The JSON form, keys in the order ``convert`` writes them, then the optional ones
        that are set, then ``extra``."""
        out: dict[str, Any] = {
            "format": self.format, "caffe2tf_version": self.caffe2tf_version, "name": self.name,
            "source": self.source.to_json(), "input_layout": self.input_layout, "tensor_layout": self.tensor_layout,
            "folded": self.folded, "folds": {k: list(v) for k, v in self.folds.items()},
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "keras_outputs": list(self.keras_outputs),
            "preprocessing": self.preprocessing.to_json() if self.preprocessing is not None else None,
            "layers": [layer.to_json() for layer in self.layers],
        }
        for key in _OPTIONAL:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.exports:
            out["exports"] = self.exports
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def photo_preprocessing(self) -> Preprocessing:
        """How photos become this model's input: the recorded preprocessing, with the ImageNet
        mean where none is recorded (what Caffe image nets expect); ValueError when the
        recorded mean does not have 3 values."""
        return (self.preprocessing or Preprocessing()).for_photos()

    def layer(self, name: str) -> LayerRecord | None:
        """The record of the Caffe layer ``name``, if any."""
        return next((layer for layer in self.layers if layer.name == name), None)


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def conversion_record(original: Graph, graph: Graph, build, *, input_layout: str, fold: bool,
                      prototxt: str, caffemodel: str | None,
                      preprocessing: Preprocessing | None) -> ConversionRecord:
    """The content of conversion.json: inputs, outputs, and for every Caffe layer
    output the Keras tensor that holds it (``None`` where folding removed it)."""
    v2t: Mapping[str, str] = build.value_to_tensor_name
    folded_into = {f: n.name for n in graph.nodes for f in n.folded}
    surviving = {n.name for n in graph.nodes}
    layers = []
    for node in original.nodes:
        layers.append(LayerRecord(
            name=node.name, type=node.type,
            bottoms=[original.values[v].blob for v in node.inputs],
            tops=[original.values[v].blob for v in node.outputs],
            values=list(node.outputs),
            shapes=[list(original.values[v].shape or ()) for v in node.outputs],
            keras_tensors=[v2t.get(v) for v in node.outputs],
            keras_layers=list(build.keras_layer_for_node.get(node.name, [])) if node.name in surviving else [],
            folded_into=folded_into.get(node.name),
        ))

    def io(values: Sequence[str], layout: str) -> list[TensorRecord]:
        out = []
        for v in values:
            shape = list(original.values[v].shape or ())
            keras_shape = [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 and layout == "nhwc" else shape
            out.append(TensorRecord(blob=original.values[v].blob, value=v, caffe_shape=shape,
                                    keras_shape=keras_shape, keras_name=v2t.get(v)))
        return out

    return ConversionRecord(
        format=CONVERSION_FORMAT,
        caffe2tf_version=__version__,
        name=original.name,
        source=SourceFiles(prototxt=str(prototxt), caffemodel=str(caffemodel) if caffemodel else None,
                           caffemodel_sha256=_sha256(caffemodel) if caffemodel else None),
        input_layout=input_layout,
        tensor_layout=TENSOR_LAYOUT,
        folded=fold,
        folds={n.name: list(n.folded) for n in graph.nodes if n.folded},
        inputs=io(original.inputs, input_layout),
        outputs=io(original.outputs, "nhwc"),  # --input-layout changes only the inputs
        keras_outputs=list(getattr(build.model, "output_names", []) or []),
        preprocessing=preprocessing,
        layers=layers,
    )


def read_record(p: Path) -> ConversionRecord:
    """``p/conversion.json``, checked to be a caffe2tf conversion record (else ModelDirError)."""
    p = Path(p)
    rec_path = p / RECORD_NAME
    if not p.is_dir():
        raise ModelDirError("no such directory", file=str(p))
    if not rec_path.is_file():
        raise ModelDirError("not a converted model directory (no conversion.json); make one with "
                            "`caffe2tf convert`", file=str(p))
    try:
        data = json.loads(rec_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"conversion.json is unreadable: {exc}", file=str(rec_path)) from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("caffe2tf-conversion/"):
        raise ModelDirError("conversion.json is not a caffe2tf conversion record", file=str(rec_path))
    try:
        return ConversionRecord.from_json(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelDirError(f"conversion.json is malformed: {exc}", file=str(rec_path)) from None


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


def write_record(model_dir: Path, record: ConversionRecord) -> None:
    """Write ``model_dir/conversion.json`` (atomically)."""
    write_atomic(Path(model_dir) / RECORD_NAME, (json.dumps(record.to_json(), indent=1) + "\n").encode())


def update_record(model_dir: Path, change: Callable[[ConversionRecord], None]) -> ConversionRecord:
    """Read ``model_dir``'s record, let ``change`` edit it in place, write it back
    atomically; returns the new record."""
    record = read_record(Path(model_dir))
    change(record)
    write_record(Path(model_dir), record)
    return record
