"""TensorFlow Serving's REST request and response formats for ``:predict``.

Follows https://www.tensorflow.org/tfx/serving/api_rest:

* row format ``{"signature_name"?: str, "instances": [example, ...]}``: one list
  element per example; with one input an example is that input's value (or an
  object ``{input: value}``), with several inputs it is an object naming all of
  them. Answered with ``{"predictions": [...]}``: one element per example, the
  output's value, or an object ``{output: value}`` when there are several outputs.
* columnar format ``{"signature_name"?: str, "inputs": value | {input: value}}``
  with the batch dimension inside each value. Answered with ``{"outputs": value}``
  (one output) or ``{"outputs": {output: value}}``.

Errors raise :class:`RequestError` whose message is one line; the app answers
``{"error": message}`` with its status.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from caffe2tf.errors import RequestError
from caffe2tf.model_dir.served import SIGNATURE, InputError, ServedModel, Signature

try:  # orjson parses and writes large float arrays several times faster (optional)
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without the optional package
    _orjson = None


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = False


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing.

    A 473x473x3 input is ~225,000 nested lists: allocating them triggers collection
    after collection of objects that cannot form cycles (2-3x the parse time). Shared
    by concurrent workers: the collector resumes when the last parse ends.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


def loads(body: bytes) -> Any:
    """Parse a JSON body; raises RequestError(400) with the parser's reason."""
    if not body.strip():
        raise RequestError(400, "JSON parse error: the request body is empty")
    try:
        with _no_gc():
            return _loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise RequestError(400, f"JSON parse error: {exc}") from None


def _loads(body: bytes) -> Any:
    if _orjson is not None:
        return _orjson.loads(body)
    import json

    return json.loads(body)


def dumps(obj: Any) -> bytes:
    """JSON bytes; numpy arrays become nested lists (float32 written exactly, shortest form)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            pass  # an array dtype orjson does not know (e.g. float16): fall through
    import json

    return json.dumps(_tolist(obj), separators=(",", ":"), allow_nan=True).encode()


def _tolist(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _tolist(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tolist(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass
class PredictRequest:
    signature: Signature
    feeds: dict[str, np.ndarray]
    row_format: bool
    batch: int


def _to_array(value: Any, name: str, dtype: str) -> np.ndarray:
    if isinstance(value, dict) and "b64" in value:
        raise RequestError(400, f"input '{name}': base64 ('b64') values are for string tensors; "
                                f"this input is {dtype}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise RequestError(400, f"input '{name}' is not a rectangular array of numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        what = "ragged or contains non-numbers" if arr.dtype.kind == "O" else f"of {arr.dtype.kind!r} values"
        raise RequestError(400, f"input '{name}' must be a rectangular array of numbers; the value is {what}")
    return arr


def parse_predict(body: bytes, model: ServedModel, max_batch: int) -> PredictRequest:
    """Body bytes -> checked feeds for one signature (raises RequestError)."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise RequestError(400, "the request body must be a JSON object with 'instances' (row format) "
                                "or 'inputs' (columnar format)")
    sig_name = doc.get("signature_name") or SIGNATURE
    if not isinstance(sig_name, str) or sig_name not in model.signatures:
        raise RequestError(400, f"serving signature name: '{sig_name}' not found in signature def "
                                f"(available: {', '.join(model.signatures)})")
    sig = model.signatures[sig_name]
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows == has_cols:
        raise RequestError(400, "the request must have exactly one of 'instances' (row format) "
                                "or 'inputs' (columnar format)")
    names = list(sig.inputs)
    feeds: dict[str, np.ndarray] = {}
    if has_rows:
        rows = doc["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError(400, "'instances' must be a non-empty list, one element per example")
        if len(rows) > max_batch:
            raise RequestError(400, f"{len(rows)} instances in one request; this service takes at most "
                                    f"{max_batch} (--max-batch)")
        named = all(isinstance(r, dict) for r in rows)
        if len(names) > 1 and not named:
            raise RequestError(400, f"with several inputs ({', '.join(names)}) every instance must be an "
                                    f"object naming each of them")
        if named:
            for k in names:
                missing = [i for i, r in enumerate(rows) if k not in r]
                if missing:
                    raise RequestError(400, f"instance {missing[0]} has no value for input '{k}'")
            extra = sorted({k for r in rows for k in r if k not in sig.inputs})
            if extra:
                raise RequestError(400, f"unknown input(s) {extra}; the signature takes {names}")
            for k in names:
                feeds[k] = _to_array([r[k] for r in rows], k, sig.inputs[k].dtype)
        else:
            feeds[names[0]] = _to_array(rows, names[0], sig.inputs[names[0]].dtype)
    else:
        cols = doc["inputs"]
        if isinstance(cols, dict) and not (len(names) == 1 and "b64" in cols):
            extra = sorted(k for k in cols if k not in sig.inputs)
            if extra:
                raise RequestError(400, f"unknown input(s) {extra}; the signature takes {names}")
            for k in names:
                if k not in cols:
                    raise RequestError(400, f"'inputs' has no value for input '{k}'")
                feeds[k] = _to_array(cols[k], k, sig.inputs[k].dtype)
        elif len(names) == 1:
            feeds[names[0]] = _to_array(cols, names[0], sig.inputs[names[0]].dtype)
        else:
            raise RequestError(400, f"with several inputs ({', '.join(names)}) 'inputs' must be an object "
                                    f"naming each of them")
        batch = next(iter(feeds.values())).shape[0] if next(iter(feeds.values())).ndim else 1
        if batch > max_batch:
            raise RequestError(400, f"batch of {batch} in one request; this service takes at most "
                                    f"{max_batch} (--max-batch)")
    try:
        feeds = sig.check_feeds(feeds)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
    first = next(iter(feeds.values()))
    return PredictRequest(sig, feeds, has_rows, int(first.shape[0]) if first.ndim else 1)


def format_predict(req: PredictRequest, outputs: dict[str, np.ndarray]) -> bytes:
    """The response body for ``outputs`` in the request's format."""
    outputs = {k: np.ascontiguousarray(v) for k, v in outputs.items()}
    if req.row_format:
        if len(outputs) == 1:
            return dumps({"predictions": next(iter(outputs.values()))})
        n = req.batch
        return dumps({"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]})
    if len(outputs) == 1:
        return dumps({"outputs": next(iter(outputs.values()))})
    return dumps({"outputs": outputs})
