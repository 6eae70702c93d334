"""The served model: a converted model directory loaded once, with its signature.

The service runs the directory's SavedModel (``OUT/saved_model``, signature
``serving_default``): the very graph TensorFlow Serving would run on the same
directory, so both answer with the same numbers. A directory converted with
``--no-saved-model`` falls back to ``model.keras`` with a signature made up from
``conversion.json`` in the same shape (input names as the Keras inputs, outputs
``output_0``, ``output_1``, ...).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from caffe2tf.model_dir.record import ConversionRecord, ModelDirError, read_record
from caffe2tf.errors import Caffe2TFError

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
MODEL_VERSION = "1"

# numpy dtype name -> TensorFlow DataType enum name (what TF Serving's metadata shows)
_DT = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int32": "DT_INT32",
       "int64": "DT_INT64", "uint8": "DT_UINT8", "int8": "DT_INT8", "bool": "DT_BOOL",
       "string": "DT_STRING"}


@dataclass(frozen=True)
class TensorInfo:
    """One signature input or output: dtype (numpy name) and shape (``None`` = any)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    tensor_name: str = ""

    def shape_text(self) -> str:
        return "[" + ", ".join("-1" if d is None else str(d) for d in self.shape) + "]"

    def to_signature_json(self) -> dict:
        return {"dtype": _DT.get(self.dtype, "DT_INVALID"),
                "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in self.shape],
                                 "unknown_rank": False},
                "name": self.tensor_name or f"{self.name}:0"}


class InputError(Caffe2TFError):
    """A request's tensors do not fit the signature (answered with 400)."""


@dataclass
class Signature:
    """One callable signature: ``run({input: array}) -> {output: array}``."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Cast to the signature dtypes and check names and shapes; raises InputError."""
        missing = [k for k in self.inputs if k not in feeds]
        extra = [k for k in feeds if k not in self.inputs]
        if missing or extra:
            raise InputError(f"signature '{self.name}' takes inputs {sorted(self.inputs)}; "
                             + (f"missing {missing}" if missing else "")
                             + ("; " if missing and extra else "") + (f"unknown {extra}" if extra else ""))
        out = {}
        batch = None
        for k, info in self.inputs.items():
            arr = feeds[k]
            want = info.shape
            if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
                raise InputError(f"input '{k}' must have shape {info.shape_text()} (batch first); "
                                 f"received [{', '.join(map(str, arr.shape))}]")
            if batch is None:
                batch = arr.shape[0] if arr.ndim else None
            elif arr.ndim and arr.shape[0] != batch:
                raise InputError(f"inputs have different batch sizes ({batch} and {arr.shape[0]} for '{k}')")
            out[k] = arr.astype(info.dtype, copy=False)
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on checked feeds (see :meth:`check_feeds`)."""
        return self.fn(feeds)


@dataclass
class ServedModel:
    """A loaded model: its callable signatures (``serving_default`` first) and record."""

    name: str
    path: Path
    record: ConversionRecord
    signatures: dict[str, Signature]
    backend: str  # "saved_model" or "keras"
    signature_defs: dict = field(default_factory=dict)  # TF Serving metadata: all signature defs
    _keep: Any = None  # keeps the loaded SavedModel alive (signatures hold weak references)
    loaded_at: float = field(default_factory=time.time)

    @property
    def default(self) -> Signature:
        return self.signatures[SIGNATURE]

    @property
    def inputs(self) -> dict[str, TensorInfo]:
        return self.default.inputs

    @property
    def outputs(self) -> dict[str, TensorInfo]:
        return self.default.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``serving_default`` on checked feeds."""
        return self.default.run(feeds)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> "ServedModel":
        """Load ``path`` (what ``caffe2tf convert`` wrote). Raises ModelDirError on a bad directory."""
        p = Path(path)
        record = read_record(p)
        name = check_model_name(name) if name else default_model_name(p, record)
        saved = p / "saved_model"
        if (saved / "saved_model.pb").is_file():
            return cls._load_saved_model(p, saved, name, record)
        log.warning("%s has no saved_model/; serving model.keras instead", p)
        return cls._load_keras(p, name, record)

    @classmethod
    def _load_saved_model(cls, p: Path, saved: Path, name: str, record: ConversionRecord) -> "ServedModel":
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(saved))
        except Exception as exc:  # noqa: BLE001 - a broken SavedModel is the user's input
            raise ModelDirError(f"cannot load the SavedModel: {exc}", file=str(saved)) from None
        if SIGNATURE not in loaded.signatures:
            raise ModelDirError(f"the SavedModel has no '{SIGNATURE}' signature "
                                f"(has: {', '.join(loaded.signatures) or 'none'})", file=str(saved))
        defs = signature_defs_from_pb(saved / "saved_model.pb")
        signatures = {}
        for sname in [SIGNATURE] + sorted(k for k in loaded.signatures if k != SIGNATURE):
            sig = loaded.signatures[sname]
            names = defs.get(sname, {})
            inputs = {k: TensorInfo(k, spec.dtype.name, tuple(spec.shape.as_list()),
                                    names.get("inputs", {}).get(k, {}).get("name", ""))
                      for k, spec in sorted(sig.structured_input_signature[1].items())}
            outputs = {k: TensorInfo(k, spec.dtype.name, tuple(spec.shape.as_list()),
                                     names.get("outputs", {}).get(k, {}).get("name", ""))
                       for k, spec in sorted(sig.structured_outputs.items())}

            def run(feeds: dict[str, np.ndarray], _sig=sig) -> dict[str, np.ndarray]:
                result = _sig(**{k: tf.convert_to_tensor(v) for k, v in feeds.items()})
                return {k: v.numpy() for k, v in result.items()}

            signatures[sname] = Signature(sname, inputs, outputs, run)
        if not defs:
            defs = {k: _signature_json(s.inputs, s.outputs) for k, s in signatures.items()}
        return cls(name=name, path=p, record=record, signatures=signatures, backend="saved_model",
                   signature_defs=defs, _keep=loaded)

    @classmethod
    def _load_keras(cls, p: Path, name: str, record: ConversionRecord) -> "ServedModel":
        from caffe2tf.model_dir.converted import ConvertedModel

        converted = ConvertedModel.load(p)
        model = converted.model
        inputs = {}
        for t in model.inputs:
            iname = t.name.split(":")[0]
            inputs[iname] = TensorInfo(iname, "float32", (None,) + tuple(t.shape[1:]))
        outputs = {f"output_{i}": TensorInfo(f"output_{i}", "float32", (None,) + tuple(t.shape[1:]))
                   for i, t in enumerate(model.outputs)}
        in_names, out_names = list(inputs), list(outputs)

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            args = [feeds[k] for k in in_names]
            result = model(args if len(args) > 1 else args[0], training=False)
            if isinstance(result, dict):
                result = list(result.values())
            if not isinstance(result, (list, tuple)):
                result = [result]
            return {k: np.asarray(v) for k, v in zip(out_names, result)}

        sig = Signature(SIGNATURE, inputs, outputs, run)
        return cls(name=name, path=p, record=record, signatures={SIGNATURE: sig}, backend="keras",
                   signature_defs={SIGNATURE: _signature_json(inputs, outputs)}, _keep=model)

    def warm_up(self) -> float:
        """One inference on zeros (traces the graph once); returns its seconds."""
        feeds = {k: np.zeros(tuple(1 if d is None else d for d in info.shape), dtype=info.dtype)
                 for k, info in self.inputs.items()}
        t0 = time.perf_counter()
        self.run(feeds)
        return time.perf_counter() - t0

    # -- TF Serving views ----------------------------------------------------------------
    def status_json(self) -> dict:
        return {"model_version_status": [{"version": MODEL_VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata_json(self) -> dict:
        return {"model_spec": {"name": self.name, "signature_name": "", "version": MODEL_VERSION},
                "metadata": {"signature_def": {"signature_def": self.signature_defs}}}


def check_model_name(name: str) -> str:
    """``name`` if it can stand in a URL path segment, else ModelDirError."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ModelDirError(f"model name '{name}' must use only letters, digits, '_', '.' and '-'")
    return name


def default_model_name(path: Path, record: ConversionRecord) -> str:
    """The Caffe net's name from conversion.json, else the directory's name, made URL-safe."""
    for candidate in (record.name, path.resolve().name):
        cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(candidate or "")).strip("_.")
        if cleaned:
            return cleaned
    return "model"


def _signature_json(inputs: dict[str, TensorInfo], outputs: dict[str, TensorInfo]) -> dict:
    return {"inputs": {k: v.to_signature_json() for k, v in inputs.items()},
            "outputs": {k: v.to_signature_json() for k, v in outputs.items()},
            "method_name": PREDICT_METHOD, "defaults": {}}


def signature_defs_from_pb(pb_path: Path) -> dict:
    """All signature defs of a SavedModel as TF Serving's metadata JSON shows them."""
    try:
        from google.protobuf.json_format import MessageToDict
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString(pb_path.read_bytes())
        for mg in sm.meta_graphs:
            if "serve" in mg.meta_info_def.tags:
                return {k: MessageToDict(v, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
                        for k, v in sorted(mg.signature_def.items())}
    except Exception as exc:  # noqa: BLE001 - metadata is a nicety; serving still works without it
        log.warning("could not read signature defs from %s: %s", pb_path, exc)
    return {}

