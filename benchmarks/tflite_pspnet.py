#!/usr/bin/env python
"""PSPNet-50 (ADE20K, 473x473) float32: TFLite on LiteRT (XNNPACK) against the SavedModel
that ``convert`` writes, side by side in one process (issue 15, goal 5: TFLite <= SavedModel).

    .venv/bin/python benchmarks/tflite_pspnet.py [--threads 2] [--rounds 4]

Converts the case (caffemodel rebuilt from its recipe into ``benchmarks/.cache/`` once),
exports TFLite with ``caffe2tf.export.tflite.export_tflite`` (its own check against the
SavedModel included), then times both runtimes on the same input in alternating rounds
(one call each per round, after a warm-up), with TensorFlow's intra-op pool and the
TFLite interpreter both at ``--threads``. Prints best and median of each, the ratio
TFLite / SavedModel, the runtime that ran the flatbuffer, and the export's error.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CASE = C.SHARED_REFERENCE / "pspnet50_ade20k_473"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    tf = C.configure_threads(args.threads)
    import numpy as np

    from caffe2tf.export.interpreter import TFLiteRunner
    from caffe2tf.export.tflite import export_tflite
    from caffe2tf.model_dir.served import ServedModel
    from caffe2tf.pipeline import convert

    caffemodel, _ = C.case_caffemodel(CASE)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        convert(str(CASE / "net.prototxt"), str(caffemodel), out)
        t0 = time.perf_counter()
        report = export_tflite(out, timing_repeats=0)
        export_s = time.perf_counter() - t0
        runner = TFLiteRunner(report.path.read_bytes(), threads=args.threads)
        sig = ServedModel.load(out).default
        name = runner.input_names[0]
        x = np.random.default_rng(0).uniform(-100, 100, (1, 473, 473, 3)).astype(np.float32)
        feeds = sig.check_feeds({next(iter(sig.inputs)): x})
        run_sm = lambda: sig.run(feeds)  # noqa: E731
        run_tfl = lambda: runner({name: x})  # noqa: E731
        run_sm(), run_tfl()
        times: dict[str, list[float]] = {"SavedModel": [], "TFLite": []}
        for r in range(args.rounds):
            order = [("SavedModel", run_sm), ("TFLite", run_tfl)][:: 1 if r % 2 == 0 else -1]
            for label, fn in order:
                t = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t)
    info = C.machine_info()
    print(f"PSPNet-50 473 float32 — {info.get('cpu', '?')} ({', '.join(info.get('simd', []))}), "
          f"{args.threads} threads, load {load0:.2f} -> {os.getloadavg()[0]:.2f}, TF {tf.__version__}")
    print(f"TFLite runtime: {type(runner.interpreter).__module__}; export {export_s:.1f} s, "
          f"{report.size_bytes / C.MiB:.0f} MiB; vs SavedModel max rel error {report.max_rel_error:.1e}, "
          f"argmax agreement {report.argmax_agreement:.4%}")
    for label, ts in times.items():
        print(f"  {label:10s} best {min(ts):.3f} s  median {statistics.median(ts):.3f} s  ({len(ts)} runs)")
    ratio = min(times["TFLite"]) / min(times["SavedModel"])
    print(f"TFLite / SavedModel (best): {ratio:.2f}x  ({'ok' if ratio <= 1 else 'FAIL'}: goal <= 1)")


if __name__ == "__main__":
    main()
