"""Explaining a TFLite conversion failure: which Caffe layer holds the ops TFLite refused."""
from __future__ import annotations

import re

from caffe2tf.model_dir.record import ConversionRecord


def _keras_to_caffe(record: ConversionRecord) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (Caffe layer name, Caffe type) from conversion.json."""
    out: dict[str, tuple[str, str]] = {}
    for layer in record.layers:
        for k in layer.keras_layers:
            out.setdefault(k, (layer.name, layer.type))
    return out


def _layer_of(path: str, known: dict[str, tuple[str, str]]) -> str | None:
    """The Keras layer a TF node path (``functional_1/conv5_1/Erf@...``) belongs to."""
    parts = path.split("@")[0].split("/")
    for part in parts:
        if part in known:
            return part
    for part in parts:  # Keras re-traces under uniquified scopes: "conv5" -> "conv5_1"
        base = re.sub(r"_\d+$", "", part)
        if base in known:
            return base
    return parts[1] if len(parts) > 2 else None


def describe_unsupported(exc: Exception, record: ConversionRecord, select_tf_ops: bool) -> str | None:
    """A one-line account of the ops the converter refused, per layer; None if not that kind."""
    errors = getattr(exc, "errors", None) or []
    known = _keras_to_caffe(record)
    per_layer: dict[str, dict] = {}
    for err in errors:
        op = getattr(getattr(err, "operator", None), "name", "") or ""
        code = int(getattr(err, "error_code", 0) or 0)
        if not op or code not in (1, 2):  # ERROR_NEEDS_FLEX_OPS, ERROR_NEEDS_CUSTOM_OPS
            continue
        names = [c.name for c in getattr(getattr(err, "location", None), "call", [])] or \
                [getattr(getattr(err, "location", None), "name", "")]
        keras_layer = None
        for n in names:
            keras_layer = _layer_of(n, known)
            if keras_layer:
                break
        key = keras_layer or "?"
        entry = per_layer.setdefault(key, {"ops": [], "custom": False})
        tf_op = op[3:] if op.startswith("tf.") else op
        if tf_op not in entry["ops"]:
            entry["ops"].append(tf_op)
        entry["custom"] |= code == 2
    if not per_layer:
        return None
    parts = []
    for keras_layer, entry in per_layer.items():
        caffe = known.get(keras_layer)
        who = (f"layer '{caffe[0]}' ({caffe[1]}, Keras layer '{keras_layer}')" if caffe
               else f"Keras layer '{keras_layer}'")
        ops = ", ".join(entry["ops"])
        if entry["custom"]:
            why = (f"uses TensorFlow op(s) {ops} that are neither TFLite builtins nor in TFLite's Select TF ops "
                   f"set, so no TFLite runtime can run them")
        else:
            why = f"uses TensorFlow op(s) {ops} that are not TFLite builtin ops"
        parts.append(f"{who} {why}")
    any_flex_only = any(not e["custom"] for e in per_layer.values())
    hint = ""
    if any_flex_only and not select_tf_ops:
        hint = ("; rerun with --select-tf-ops to keep them as TensorFlow ops (the app then needs TFLite's "
                "Flex delegate)")
    return "cannot export to TFLite: " + "; ".join(parts) + hint
