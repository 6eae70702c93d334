#!/usr/bin/env python
"""res10_ssd_face (OpenCV's SSD face detector, real weights, 300x300): inference of our
SavedModel against OpenCV dnn, its home runtime, on the same input with the same threads.

    .venv/bin/python benchmarks/detect_res10.py [--threads 2] [--runs 30] [--json out.json]

One process, one run:

1. converts ``../shared/caffe_reference/res10_ssd_face`` with ``caffe2tf.pipeline``
   (into a temporary directory; timed);
2. sets TensorFlow's intra-op pool to ``--threads`` and inter-op to 1, and
   ``cv2.setNumThreads(--threads)``;
3. loads our SavedModel (``serving_default``, the graph ``caffe2tf serve`` and TF Serving
   run) and ``cv2.dnn.readNetFromCaffe`` on the very same prototxt and caffemodel
   (``DNN_BACKEND_OPENCV`` / ``DNN_TARGET_CPU``);
4. feeds both the recorded input of the case (the astronaut photo, BGR minus the ImageNet
   mean; NCHW for OpenCV, NHWC for ours), warms each up, then times them **alternately**
   (so load from other processes hits both alike), ``--runs`` calls each, and reports the
   best and the median and the ratio ours / OpenCV. Also timed: our Keras model up to the
   inputs of DetectionOutput (the body, under ``tf.function``) to show where our time goes,
   and OpenCV's per-layer-type profile;
5. checks both answers against Caffe's recorded DetectionOutput: the face row (label,
   score, box) and how many rows.

The machine may be shared: each timing carries its CPU share (process CPU seconds /
(wall x threads)); well under 1 means other processes took the cores, and then the CPU
seconds per call (the work each runtime does, which contention inflates far less than
wall time) compare the runtimes better than wall times do.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CASE = C.SHARED_REFERENCE / "res10_ssd_face"
MEAN_BGR = (103.939, 116.779, 123.68)  # the case's input is BGR minus this mean


def reference():
    import h5py
    import numpy as np

    with h5py.File(CASE / "reference.h5", "r") as f:
        x = f["inputs/0"][()].astype(np.float32)
        last = f["layers"][sorted(f["layers"])[-1]]
        assert last.attrs["type"] == "DetectionOutput", last.attrs["type"]
        rows = last["top0"][()].reshape(-1, 7)
    return x, rows


def _timed_pair(fns: dict, runs: int, threads: int) -> dict:
    """Alternate the callables ``runs`` times; per name: best, median, CPU share."""
    times = {k: [] for k in fns}
    cpus = {k: [] for k in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    out = {}
    for name in fns:
        s = sorted(times[name])
        c = sorted(cpus[name])
        out[name] = {"best_ms": 1000 * s[0], "median_ms": 1000 * s[len(s) // 2], "runs": len(s),
                     "best_cpu_ms": 1000 * c[0], "median_cpu_ms": 1000 * c[len(c) // 2],
                     "cpu_share": sum(cpus[name]) / sum(times[name]) / threads}
    return out


def face_row(rows):
    """The best-scoring label-1 row (the face)."""
    import numpy as np

    rows = np.asarray(rows, np.float32).reshape(-1, 7)
    faces = rows[rows[:, 1] == 1]
    return faces[np.argmax(faces[:, 2])] if len(faces) else None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2),
                    help="TF intra-op threads and cv2.setNumThreads (default: min(cores, 2))")
    ap.add_argument("--runs", type=int, default=30, help="timed calls of each runtime (alternating)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    try:
        import cv2
    except ImportError as exc:
        print(f"needs OpenCV: pip install 'opencv-python-headless<5' ({exc})", file=sys.stderr)
        return 2
    import numpy as np

    tf = C.configure_threads(args.threads)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    cv2.setNumThreads(args.threads)
    res: dict = {"machine": C.machine_info(), "threads": args.threads, "cv2_version": cv2.__version__,
                 "cv2_threads": cv2.getNumThreads(), "tf_version": tf.__version__,
                 "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                 "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    from caffe2tf.pipeline import Preprocessing, convert

    x_nchw, caffe_rows = reference()
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    with tempfile.TemporaryDirectory(prefix="res10_bench_") as tmp:
        out_dir = Path(tmp) / "res10"
        t0 = time.perf_counter()
        result = convert(CASE / "net.prototxt", CASE / "weights.caffemodel", out_dir,
                         preprocessing=Preprocessing(mean=MEAN_BGR, scale=1.0, bgr=True))
        res["convert_s"] = time.perf_counter() - t0
        res["convert_stages_s"] = result.timings
        loaded = tf.saved_model.load(str(out_dir / "saved_model"))
        sig = loaded.signatures["serving_default"]
        (in_name,) = sig.structured_input_signature[1].keys()
        (out_name,) = sig.structured_outputs.keys()
        x_tf = tf.constant(x_nhwc)

        def ours():
            return sig(**{in_name: x_tf})[out_name].numpy()

        # the body: the Keras model up to DetectionOutput's three inputs (where our time goes)
        import keras

        import caffe2tf.backend.layers  # noqa: F401
        from caffe2tf.model_dir.record import read_record

        model = keras.models.load_model(out_dir / "model.keras", compile=False)
        record = read_record(out_dir)
        det = next(layer for layer in record.layers if layer.type == "DetectionOutput")
        tensors = {}
        for layer in record.layers:
            for top, name in zip(layer.tops, layer.keras_tensors):
                if name:
                    tensors[top] = name
        body_outputs = []
        for b in det.bottoms:
            layer_name = tensors.get(b, "").split(":")[0].split("/")[0]
            try:
                body_outputs.append(model.get_layer(layer_name).output)
            except ValueError:
                body_outputs = []
                break
        body = None
        if body_outputs:
            sub = keras.Model(model.inputs, body_outputs)
            body_fn = tf.function(lambda t: sub(t, training=False))

            def body():
                return [t.numpy() for t in body_fn(x_tf)]
        net = cv2.dnn.readNetFromCaffe(str(CASE / "net.prototxt"), str(CASE / "weights.caffemodel"))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

        def opencv():
            net.setInput(x_nchw)
            return net.forward()

        t0 = time.perf_counter()
        ours_rows = ours()
        res["ours_first_call_ms"] = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        cv_rows = opencv()
        res["opencv_first_call_ms"] = 1000 * (time.perf_counter() - t0)
        fns = {"ours": ours, "opencv": opencv}
        if body is not None:
            body()
            fns["ours_body"] = body
        for fn in fns.values():  # warm-up
            fn()
        res["timing"] = _timed_pair(fns, args.runs, args.threads)
        total_ticks, layer_ticks = net.getPerfProfile()
        freq = cv2.getTickFrequency()
        by_type: dict[str, float] = {}
        for name, ticks in zip(net.getLayerNames(), np.asarray(layer_ticks).reshape(-1)):
            t = net.getLayer(name).type
            by_type[t] = by_type.get(t, 0.0) + 1000 * float(ticks) / freq
        res["opencv_profile_ms"] = dict(sorted(by_type.items(), key=lambda kv: -kv[1])[:6])
    ours_rows = ours_rows.reshape(-1, 7) if ours_rows.shape[-1] == 7 else ours_rows[..., 0].reshape(-1, 7)
    cv_all = np.asarray(cv_rows).reshape(-1, 7)
    cv_rows = cv_all[cv_all[:, 2] > 0]  # OpenCV pads its top to keep_top_k rows with zeros
    res["rows"] = {"caffe": len(caffe_rows), "ours": len(ours_rows), "opencv": len(cv_rows),
                   "opencv_padded_to": len(cv_all)}
    ref_face = face_row(caffe_rows)
    res["face"] = {}
    for name, rows in (("caffe", caffe_rows), ("ours", ours_rows), ("opencv", cv_rows)):
        f = face_row(rows)
        res["face"][name] = None if f is None else {
            "score": float(f[2]), "box": [float(v) for v in f[3:7]],
            "max_abs_diff_vs_caffe": float(np.max(np.abs(f[2:7] - ref_face[2:7])))}
    if len(ours_rows) == len(caffe_rows):
        res["ours_rows_max_abs_diff_vs_caffe"] = float(np.max(np.abs(ours_rows - caffe_rows)))
    t = res["timing"]
    res["ratio_best"] = t["ours"]["best_ms"] / t["opencv"]["best_ms"]
    res["ratio_median"] = t["ours"]["median_ms"] / t["opencv"]["median_ms"]
    res["ratio_cpu_median"] = t["ours"]["median_cpu_ms"] / t["opencv"]["median_cpu_ms"]

    m = res["machine"]
    print(f"res10_ssd_face 300x300, batch 1 — {m.get('cpu', '?')} ({', '.join(m.get('simd', []))}), "
          f"{m['cpus']} cores, load {m['loadavg'][0]:.1f}")
    print(f"threads: TF intra-op {res['tf_intra_op']} / inter-op {res['tf_inter_op']}, "
          f"OpenCV {res['cv2_threads']} (cv2 {res['cv2_version']}, TF {res['tf_version']})")
    print(f"conversion: {res['convert_s']:.1f} s")
    print(f"{'':22} {'best ms':>9} {'median ms':>10} {'median CPU ms':>14} {'cpu share':>10}")
    labels = {"ours": "ours (SavedModel)", "opencv": "OpenCV dnn", "ours_body": "ours, body only"}
    for k, v in t.items():
        print(f"{labels[k]:22} {v['best_ms']:9.2f} {v['median_ms']:10.2f} {v['median_cpu_ms']:14.2f} "
              f"{v['cpu_share']:10.2f}")
    print(f"ours / OpenCV: {res['ratio_best']:.2f}x (best wall), {res['ratio_median']:.2f}x (median wall), "
          f"{res['ratio_cpu_median']:.2f}x (median CPU seconds per call); {args.runs} alternating runs each")
    if "ours_body" in t:
        print(f"  of our best, DetectionOutput and the rest after the body: "
              f"{t['ours']['best_ms'] - t['ours_body']['best_ms']:.2f} ms")
    print("OpenCV by layer type (ms, last call): " +
          ", ".join(f"{k} {v:.2f}" for k, v in res["opencv_profile_ms"].items()))
    print(f"rows: Caffe {res['rows']['caffe']}, ours {res['rows']['ours']}, OpenCV {res['rows']['opencv']} "
          f"(its top padded with zero rows to {res['rows']['opencv_padded_to']})"
          + (f"; ours vs Caffe max |d| over all rows {res['ours_rows_max_abs_diff_vs_caffe']:.2e}"
             if "ours_rows_max_abs_diff_vs_caffe" in res else ""))
    for name, f in res["face"].items():
        if f:
            print(f"face ({name:6}): score {f['score']:.6f}, box {', '.join(f'{v:.5f}' for v in f['box'])}, "
                  f"max |d| vs Caffe {f['max_abs_diff_vs_caffe']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=C._json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
