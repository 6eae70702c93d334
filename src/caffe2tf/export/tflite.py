"""TFLite export of a converted model, checked against its SavedModel.

:func:`export_tflite` converts ``OUT/saved_model`` (signature ``serving_default``)
with TensorFlow's TFLite converter, writes ``OUT/model.tflite`` atomically, then runs
the TFLite interpreter and the SavedModel on the same input and records the result
in ``OUT/conversion.json`` (``exports.tflite[<file name>]``, written atomically):

* ``max_rel_error`` = max|tflite - saved_model| / max(max|saved_model|, 1e-6) over all
  outputs (the project's whole-network metric) and ``max_abs_error``;
* ``argmax_agreement``: for outputs of per-pixel class scores, the fraction of pixels
  whose arg-max class is the same;
* ``exact``: for ``quantize="none"`` whether the error is within the whole-network
  tolerance (2e-4); quantized variants report their error and size and claim nothing.

Quantization (``quantize``):

* ``none``    — float32 weights and activations;
* ``float16`` — float16 weights (computed in float32 on CPU);
* ``dynamic`` — int8 weights, activations quantized on the fly;
* ``int8``    — int8 weights and activations (integer-only builtin kernels), calibrated
  on ``calibration_images`` (or, without them, on synthetic rooms — flagged in the
  report); input and output stay float32.

Only TFLite builtin ops are allowed unless ``select_tf_ops=True``; when an op is not
a builtin, :class:`ExportError` names the Caffe layer (via ``conversion.json``), its
Keras layer and the TensorFlow op instead of TensorFlow's converter dump.
"""
from __future__ import annotations

import datetime
import logging
import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from caffe2tf import __version__
from caffe2tf.errors import ExportError
from caffe2tf.export.calibration import feeds_from_images, images_from_dir, is_image_input, read_images, synthetic_images
from caffe2tf.export.interpreter import TFLiteRunner, op_counts
from caffe2tf.export.unsupported import describe_unsupported
from caffe2tf.model_dir.record import update_record, write_atomic

log = logging.getLogger(__name__)

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
WHOLE_NETWORK_TOLERANCE = 2e-4


@dataclass
class TFLiteReport:
    """What :func:`export_tflite` did; ``to_json()`` is what goes into conversion.json."""

    path: Path
    quantize: str
    size_bytes: int
    saved_model_bytes: int
    select_tf_ops: bool
    max_abs_error: float | None  # None: not checked (see note)
    max_rel_error: float | None
    argmax_agreement: float | None
    exact: bool | None  # None: quantized, no claim
    tolerance: float | None
    check_input: str
    timing_ms: dict[str, float] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    calibration: dict | None = None
    convert_s: float = 0.0
    per_output: dict[str, dict] = field(default_factory=dict)
    note: str = ""

    @property
    def checked(self) -> bool:
        return self.max_rel_error is not None

    @property
    def ok(self) -> bool:
        """False only when a float32 export is out of tolerance."""
        return self.exact is not False

    def to_json(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name
        d["ok"] = self.ok
        d["checked"] = self.checked
        d["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        d["caffe2tf_version"] = __version__
        return d

    def summary_lines(self) -> list[str]:
        kb = self.size_bytes / 1024
        ratio = self.size_bytes / self.saved_model_bytes if self.saved_model_bytes else float("nan")
        lines = [f"wrote {self.path} ({kb:,.0f} KiB, {ratio:.2f}x the SavedModel's variables; "
                 f"quantize={self.quantize}{', select TF ops' if self.select_tf_ops else ''})"]
        if not self.checked:
            lines.append(f"  NOT CHECKED against the SavedModel: {self.note}")
            return lines
        check = f"  vs SavedModel on {self.check_input}: max rel error {self.max_rel_error:.3g}, " \
                f"max abs error {self.max_abs_error:.3g}"
        if self.argmax_agreement is not None:
            check += f", argmax agreement {100 * self.argmax_agreement:.3f}%"
        lines.append(check)
        if self.exact is True:
            lines.append(f"  float32 TFLite matches the SavedModel (<= {self.tolerance:g} relative)")
        elif self.exact is False:
            lines.append(f"  MISMATCH: float32 TFLite differs from the SavedModel by more than "
                         f"{self.tolerance:g} relative")
        else:
            lines.append("  quantized: the error above is what quantization costs; no exactness is claimed")
        if self.timing_ms:
            lines.append("  inference (median, batch 1): " + ", ".join(f"{k} {v:.2f} ms" for k, v in self.timing_ms.items()))
        if self.calibration:
            lines.append(f"  calibrated on {self.calibration['images']} {self.calibration['source']} image(s)")
        return lines


# -- helpers ------------------------------------------------------------------------------------
def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def relative_error(ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(max abs diff, max abs diff / max(max|ref|, 1e-6)); (inf, inf) if either holds NaN/inf,
    so a broken export can never hide behind NaN comparisons."""
    ref = np.asarray(ref, dtype=np.float64)
    if not (np.isfinite(ref).all() and np.isfinite(np.asarray(got, dtype=np.float64)).all()):
        return float("inf"), float("inf")
    diff = float(np.max(np.abs(ref - np.asarray(got, dtype=np.float64)))) if ref.size else 0.0
    return diff, diff / max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-6)


def _record_export(model_dir: Path, key: str, entry: dict) -> None:
    """Set ``conversion.json``'s ``exports.tflite[key] = entry``, atomically."""
    update_record(model_dir, lambda record: record.exports.setdefault("tflite", {}).__setitem__(key, entry))


# -- the export ------------------------------------------------------------------------------------
def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def export_tflite(model_dir: str | os.PathLike, *, quantize: str = "none",
                  calibration_images: str | os.PathLike | None = None, calibration_count: int = 64,
                  select_tf_ops: bool = False, output: str | os.PathLike | None = None,
                  timing_repeats: int = 5, seed: int = 0) -> TFLiteReport:
    """Convert ``model_dir``'s SavedModel to TFLite, check it, record it (module doc)."""
    from caffe2tf.model_dir.served import ServedModel

    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, not '{quantize}'")
    p = Path(model_dir)
    saved = p / "saved_model"
    served = ServedModel.load(p)  # checks conversion.json
    if served.backend != "saved_model":
        raise ExportError("no saved_model/ to export (converted with --no-saved-model?); convert again "
                          "without it", file=str(p))
    record = served.record
    sig = served.default
    nchw = record.input_nchw
    out_path = Path(output) if output else p / "model.tflite"
    if out_path.suffix != ".tflite":
        raise ExportError("the output file name must end in .tflite", file=str(out_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8" else tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    calibration = None
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        image_inputs = [i for i in sig.inputs.values() if is_image_input(i.shape, nchw)]
        if calibration_images is not None:
            files = images_from_dir(Path(calibration_images), calibration_count)
            calibration = {"images": len(files), "source": f"{calibration_images}"}
            images: Callable[[], Iterable[np.ndarray]] = lambda: read_images(files)  # noqa: E731
        else:
            n = min(calibration_count, 16)
            size = (256, 256)
            if image_inputs:
                s = image_inputs[0].shape
                size = (s[2], s[3]) if nchw else (s[1], s[2])
            log.warning("int8 without --calibration-images: calibrating on %d synthetic rooms; the "
                        "quantized model's accuracy on real photos is unknown", n)
            calibration = {"images": n, "source": "synthetic (no --calibration-images given)"}
            images = lambda: synthetic_images(n, size, seed=1000 + seed)  # noqa: E731

        def representative() -> Iterator[dict]:
            yield from feeds_from_images(images(), sig.inputs, record, seed)

        converter.representative_dataset = representative
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the calibrator's "tf.lite.Interpreter is deprecated"
            flatbuffer = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and friends
        why = describe_unsupported(exc, record, select_tf_ops)
        if why:
            raise ExportError(why, file=str(p)) from None
        first = next((ln.strip() for ln in str(exc).splitlines() if "error" in ln.lower()), str(exc).strip())
        raise ExportError(f"TFLite conversion failed: {first[:400]}", file=str(p)) from None
    convert_s = time.perf_counter() - t0
    write_atomic(out_path, flatbuffer)

    # -- check against the SavedModel on the same input
    size = _check_size(sig.inputs, nchw)
    feeds = next(feeds_from_images(list(synthetic_images(1, size, seed=seed)), sig.inputs, record, seed))
    has_image = any(is_image_input(i.shape, nchw) for i in sig.inputs.values())
    check_input = (f"a synthetic room photo ({size[0]}x{size[1]}, preprocessed)" if has_image
                   else "a standard-normal random input")
    max_abs: float | None = None
    max_rel: float | None = None
    agreement: list[float] = []
    per_output: dict[str, dict] = {}
    timing: dict[str, float] = {}
    note = ""
    try:
        runner = TFLiteRunner(flatbuffer)
        got = runner(feeds)
    except RuntimeError as exc:
        if not select_tf_ops or "Flex" not in str(exc) and "Select TensorFlow" not in str(exc):
            raise ExportError(f"the TFLite interpreter cannot run the exported model: "
                              f"{str(exc).splitlines()[0][:300]}", file=str(out_path)) from None
        runner, got = None, None
        note = ("not checked: this Python's TFLite interpreter has no Flex delegate to run the Select TF "
                "ops; check it where the app's runtime links tensorflow-lite-select-tf-ops")
        log.warning("%s", note)
    if got is not None:
        ref = sig.run(sig.check_feeds(feeds))
        max_abs = max_rel = 0.0
        for name, r in ref.items():
            if name not in got:
                raise ExportError(f"the TFLite model has no output '{name}' (has {sorted(got)})",
                                  file=str(out_path))
            g = got[name]
            if g.shape != r.shape:
                raise ExportError(f"output '{name}': TFLite shape {list(g.shape)} != SavedModel "
                                  f"{list(r.shape)}", file=str(out_path))
            a, rel = relative_error(r, g)
            entry = {"max_abs_error": a, "max_rel_error": rel}
            axis = _class_axis(r.shape, size)
            if axis is not None:
                agree = float(np.mean(np.argmax(r, axis=axis) == np.argmax(g, axis=axis)))
                entry["argmax_agreement"] = agree
                agreement.append(agree)
            per_output[name] = entry
            max_abs, max_rel = max(max_abs, a), max(max_rel, rel)
        if timing_repeats > 0:
            checked = sig.check_feeds(feeds)
            timing = {"saved_model": round(_median_ms(lambda: sig.run(checked), timing_repeats), 3),
                      "tflite": round(_median_ms(lambda: runner(feeds), timing_repeats), 3)}
    exact = (max_rel <= WHOLE_NETWORK_TOLERANCE) if quantize == "none" and max_rel is not None else None
    report = TFLiteReport(path=out_path, quantize=quantize, size_bytes=len(flatbuffer),
                          saved_model_bytes=_dir_bytes(saved / "variables") or _dir_bytes(saved),
                          select_tf_ops=select_tf_ops, max_abs_error=max_abs, max_rel_error=max_rel,
                          argmax_agreement=min(agreement) if agreement else None, exact=exact,
                          tolerance=WHOLE_NETWORK_TOLERANCE if quantize == "none" else None,
                          check_input=check_input, timing_ms=timing, ops=op_counts(flatbuffer),
                          calibration=calibration, convert_s=round(convert_s, 3), per_output=per_output,
                          note=note)
    if out_path.parent.resolve() == p.resolve():
        _record_export(p, out_path.name, report.to_json())
    else:
        _record_export(p, str(out_path.resolve()), report.to_json())
    return report


def _check_size(inputs: dict, nchw: bool) -> tuple[int, int]:
    for info in inputs.values():
        if is_image_input(info.shape, nchw):
            s = info.shape
            return (int(s[2]), int(s[3])) if nchw else (int(s[1]), int(s[2]))
    return (64, 64)


def _class_axis(shape: Sequence[int], input_hw: tuple[int, int]) -> int | None:
    """The class axis of a per-pixel score map (NHWC or NCHW, told apart by the input's size)."""
    if len(shape) != 4:
        return None
    if tuple(shape[2:4]) == tuple(input_hw) and tuple(shape[1:3]) != tuple(input_hw):
        return 1 if shape[1] > 1 else None
    return 3 if shape[3] > 1 else None
