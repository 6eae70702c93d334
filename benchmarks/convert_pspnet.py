#!/usr/bin/env python
"""PSPNet-50 (ADE20K, 473x473): conversion cost, inference speed against the machine's
matmul bound, and OpenCV dnn on the same caffemodel — one run, one printed report.

    .venv/bin/python benchmarks/convert_pspnet.py [--threads 2] [--quick] [--no-opencv]
                                                   [--no-xla] [--no-profile] [--explore]
                                                   [--no-peers] [--peers-only] [--peer-rounds 8]
                                                   [--json report.json] [--from-json report.json]

Every measurement runs in its own fresh Python process (``_common.run_child``) with
TensorFlow's intra-op pool at ``--threads`` and inter-op at 1 (OpenCV:
``cv2.setNumThreads``), so peak RSS, thread pools and imports belong to that
measurement alone:

1. ``convert``   — ``caffe2tf.pipeline.convert()`` (read, fold, build, save
   model.keras + SavedModel) after the imports; per-stage wall time
   (``result.timings``) and peak RSS (``getrusage`` high-water mark, and sampled
   per stage), minus the RSS after imports.
2. ``baseline``  — what conversion cannot avoid: ``read_caffemodel`` alone, and
   saving an already built Keras model of the same net as a SavedModel the leanest
   way (a ``tf.Module``, one trace, weights once), with convert's own exporter and
   as model.keras. Goal: conversion < 2x (read + lean SavedModel) and < 10 s.
3. ``infer``     — the float32 ``tf.matmul`` rate of this process's threads
   (before and after), then the converted model (folded and unfolded) eagerly,
   under ``tf.function`` and under ``tf.function(jit_compile=True)``, and the
   SavedModel's ``serving_default``; best and median of several runs after a
   warm-up. Bound = 2 x multiply-adds / matmul rate. Also a per-layer eager
   profile of the folded model: where the time goes, per layer kind, with each
   convolution's achieved rate.
4. ``opencv``    — (when ``cv2`` is importable) OpenCV dnn on the *same* weights with
   BN folded by our own pass (OpenCV cannot run PSPNet's ``BN``), Winograd off/on,
   max relative error against the reference.
5. ``peers``     — on the very SavedModel ``convert`` wrote in step 1: TensorFlow with
   TF_ENABLE_ONEDNN_OPTS unset (a user's default), =0 and =1, and onnxruntime on a tf2onnx
   export of it, each in its own persistent fresh process, timed in alternating rounds with
   the tf.matmul bound measured in the same rounds (``_peers.py``); every output checked
   against TF default's and Caffe's. ``--peers-only`` runs just convert + peers.

The caffemodel is rebuilt from the case's recipe into ``benchmarks/.cache/`` once.
The machine may be shared: every timing comes with its CPU share
(process CPU seconds / (wall x threads)); well under 1 means other processes took
the cores and the absolute times are inflated (ratios taken in the same process
are more robust).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CASE = C.SHARED_REFERENCE / "pspnet50_ade20k_473"
SCRIPT = Path(__file__).resolve()

# (m, k, n) of the tf.matmul runs; the machine's rate is the best of them. The last is the
# im2col GEMM of one of PSPNet's 3x3 512->512 convs at 60x60 (m = 60*60, k = 3*3*512).
MATMUL_SHAPES = [(4096, 4096, 4096), (2048, 2048, 2048), (3600, 4608, 512)]

GOALS = {
    "convert_vs_read_save": 2.0,   # conversion time / (read caffemodel + save SavedModel)
    "convert_s": 5.0,              # issue 15: conversion <= 5 s after the imports
    "convert_peak_rss": 1.5 * C.GiB,  # issue 15: peak RSS <= 1.5 GiB
    "matmul_fraction": 0.75,       # bound / inference time
    "vs_opencv": 0.5,              # our inference time / OpenCV's
    "peer_matmul_fraction": 0.95,  # bound / SavedModel time with TF's default settings (issue 15)
    "vs_onnxruntime": 1.05,        # SavedModel time (TF defaults) / onnxruntime's on its tf2onnx export
}
_PEER_DEFAULT = "TF default (ONEDNN_OPTS unset)"  # the label _peers.RUNTIMES gives a user's default


# =========================================================================== child tasks

def _quiet_tf() -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _import_stack(threads: int):
    """Everything a conversion imports, imported up front (timed apart from the work)."""
    tf = C.configure_threads(threads)
    _quiet_tf()
    import keras  # noqa: F401

    from caffe2tf import passes, pipeline  # noqa: F401
    from caffe2tf.backend import build  # noqa: F401
    from caffe2tf.frontend import reader  # noqa: F401
    from caffe2tf.backend import registry

    registry.load_builtins()
    return tf


def task_convert(p: dict) -> dict:
    t0 = time.perf_counter()
    _import_stack(p["threads"])
    import_s = time.perf_counter() - t0
    import gc

    from caffe2tf.pipeline import convert

    import keras

    import caffe2tf.pipeline as convert_mod

    # Split the "save" stage into its two writers (timing wrappers only; behaviour unchanged).
    sub: dict[str, float] = {}

    def timed_wrapper(fn, name):
        def wrapper(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                sub[name] = sub.get(name, 0.0) + time.perf_counter() - t0
                sub[name + "_cpu"] = sub.get(name + "_cpu", 0.0) + time.process_time() - c0
        return wrapper

    convert_mod.export_saved_model = timed_wrapper(convert_mod.export_saved_model, "saved_model")
    keras.Model.save = timed_wrapper(keras.Model.save, "model_keras")
    gc.collect()
    rss_after_imports = C.rss_bytes()
    maxrss_after_imports = C.ru_maxrss_bytes()
    marks: list[tuple[str, float, float]] = []

    def progress(stage: str) -> None:
        marks.append((stage, time.perf_counter(), time.process_time()))
        sampler.mark(stage)

    cpu0 = time.process_time()
    with C.RssSampler() as sampler:
        t1 = time.perf_counter()
        result = convert(p["prototxt"], p["caffemodel"], p["out_dir"], fold=True, force=True, progress=progress)
        total = time.perf_counter() - t1
        marks.append(("done", time.perf_counter(), time.process_time()))
        sampler.mark("done")
    cpu = time.process_time() - cpu0
    stage_cpu = {a[0]: b[2] - a[2] for a, b in zip(marks, marks[1:])}  # last one includes conversion.json
    out = Path(p["out_dir"])
    sizes = {f.name: sum(x.stat().st_size for x in ([f] if f.is_file() else f.rglob("*")) if x.is_file())
             for f in out.iterdir()}
    return {"import_s": import_s, "timings": dict(result.timings), "total_s": total, "stage_cpu_s": stage_cpu,
            "save_split": sub,
            "rss_after_imports": rss_after_imports, "maxrss_after_imports": maxrss_after_imports,
            "maxrss_end": C.ru_maxrss_bytes(), "stage_peaks": sampler.peaks, "cpu_s": cpu,
            "cpu_share": cpu / total / p["threads"], "output_sizes": sizes,
            "layers": len(result.graph.nodes) if result.graph else None}


def task_baseline(p: dict) -> dict:
    _import_stack(p["threads"])
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.model_dir.saved_model import export_saved_model
    from caffe2tf.passes import run_passes
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.frontend.weights import read_caffemodel

    t: dict[str, float] = {}
    cpu: dict[str, float] = {}
    cpu0 = time.process_time()
    with C.timed(t, "read_caffemodel", cpu):
        blobs = read_caffemodel(p["caffemodel"])
    nbytes = sum(b.nbytes for lw in blobs for b in lw.blobs)
    del blobs
    with C.timed(t, "prototxt_only", cpu):
        load_net(p["prototxt"])
    model = build_keras_model(run_passes(load_net(p["prototxt"], p["caffemodel"]))).model
    tmp = Path(tempfile.mkdtemp(dir=p["tmp"]))
    try:
        with C.timed(t, "save_saved_model", cpu):
            export_saved_model(model, tmp / "saved_model")
        with C.timed(t, "save_keras", cpu):
            model.save(tmp / "model.keras")
        with C.timed(t, "save_saved_model_lean", cpu):
            _lean_saved_model(model, tmp / "lean_saved_model")
        sizes = {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                 for d in tmp.iterdir() if d.is_dir()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"timings": t, "cpu_s": cpu, "weight_bytes": nbytes, "sizes": sizes,
            "cpu_share": (time.process_time() - cpu0) / sum(t.values()) / p["threads"]}


def _lean_saved_model(model, path: Path) -> None:
    """The least a SavedModel of ``model`` costs: one ``tf.function`` traced once, every
    weight written once. Keras's ``model.export`` traces the model three times and writes
    each weight twice (the Keras variable and its ``tf.Variable``). The module holds the
    ``tf.Variable``s the trace captures, not the Keras model: with only the Keras model
    tracked, the TFLite converter left every weight an uninitialised resource variable
    (VAR_HANDLE/READ_VARIABLE, a flatbuffer without weights) and its output was NaN."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype, name="input")
    concrete = tf.function(lambda x: {"output_0": model(x, training=False)}, input_signature=[spec],
                           autograph=False).get_concrete_function()
    module = tf.Module()
    module.captured_variables = list(concrete.variables)
    tf.saved_model.save(module, str(path), signatures={"serving_default": concrete})


def _reference(case: Path):
    """(input NCHW, final-layer sample indices, sample values, abs_max, argmax or None)."""
    import h5py
    import numpy as np

    with h5py.File(case / "reference.h5", "r") as f:
        x = f["inputs/0"][...].astype(np.float32)
        last = f["layers"][sorted(f["layers"])[-1]]
        top = last["top0"]
        if isinstance(top, h5py.Dataset):
            full = top[...]
            return x, None, full, float(np.abs(full).max()), None, dict(last.attrs)
        return (x, top["index"][...], top["value"][...], float(top.attrs["abs_max"]),
                top["argmax_axis1"][...] if "argmax_axis1" in top else None, dict(last.attrs))


def _rel_err_nchw(y_nchw, idx, val, abs_max) -> float:
    import numpy as np

    flat = np.asarray(y_nchw, dtype=np.float32).reshape(-1)
    got = flat[idx] if idx is not None else flat
    return float(np.abs(got - np.asarray(val).reshape(-1)).max() / max(abs_max, 1e-6))


def _profile_layers(model, x, build, graph, reps: int = 2) -> dict:
    """Eager per-Keras-layer wall time (min over ``reps``), grouped by Caffe layer."""
    from collections import defaultdict

    from caffe2tf.frontend.summary import node_macs

    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    threads = tf_threads()

    def wrap(op):
        def call(*args, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            out = op(*args, **kwargs)
            dt, dc = time.perf_counter() - t0, (time.process_time() - c0) / threads
            best[op.name] = min(best.get(op.name, float("inf")), dt)
            best_cpu[op.name] = min(best_cpu.get(op.name, float("inf")), dc)
            return out
        return call

    for _ in range(reps):
        model._run_through_graph([x], operation_fn=wrap)  # eager: each op has finished when it returns
    nodes = {n.name: n for n in graph.nodes}
    rows = []
    for kname, dt in best.items():
        cname = build.caffe_layer_for_keras.get(kname)
        node = nodes.get(cname) if cname else None
        layer = model.get_layer(kname)
        kind = type(layer).__name__
        macs = node_macs(graph, node) if node is not None and kname == build.keras_layer_for_node[cname][-1] else 0
        desc = kind
        if node is not None and node.type == "Convolution":
            cp = node.param.convolution_param
            k = cp.kernel_size[0] if cp.kernel_size else cp.kernel_h
            s = cp.stride[0] if cp.stride else 1
            d = cp.dilation[0] if cp.dilation else 1
            desc = f"Conv {k}x{k}" + (f" s{s}" if s > 1 else "") + (f" d{d}" if d > 1 else "")
            if kind == "ZeroPadding2D":
                desc = "ZeroPadding2D (conv pad)"
        rows.append({"keras": kname, "caffe": cname, "class": kind, "kind": desc, "s": dt, "cpu": best_cpu[kname],
                     "macs": macs,
                     "out_shape": list(layer.output.shape) if hasattr(layer, "output") else None})
    by_kind: dict[str, dict] = defaultdict(lambda: {"s": 0.0, "cpu": 0.0, "macs": 0, "n": 0})
    for r in rows:
        k = by_kind[r["kind"]]
        k["s"] += r["s"]
        k["cpu"] += r["cpu"]
        k["macs"] += r["macs"]
        k["n"] += 1
    rows.sort(key=lambda r: -r["s"])
    return {"total_s": sum(best.values()), "total_cpu": sum(best_cpu.values()), "by_kind": dict(by_kind),
            "top": rows[:15], "rows": len(rows)}


def tf_threads() -> int:
    import tensorflow as tf

    return max(tf.config.threading.get_intra_op_parallelism_threads(), 1)


def task_infer(p: dict) -> dict:
    """Matmul rate, then every inference variant timed in interleaved rounds.

    Rounds (each variant once per round, plus a quick matmul) rather than one
    variant after another: on a shared machine every variant then sees the same
    mix of quiet and busy moments, and best-of-rounds compares like with like.
    """
    threads = p["threads"]
    tf = _import_stack(threads)
    import numpy as np

    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.passes import run_passes
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.frontend.summary import total_macs

    out: dict = {"tf_version": tf.__version__, "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    shapes = [tuple(s) for s in p["matmul_shapes"]]
    out["matmul_before"] = [C.matmul_throughput(sh, p["matmul_reps"], threads=threads) for sh in shapes]
    x_nchw, idx, val, abs_max, _, _ = _reference(Path(p["case"]))
    x = tf.constant(np.ascontiguousarray(np.transpose(x_nchw, (0, 2, 3, 1))))
    original = load_net(p["prototxt"], p["caffemodel"])
    out["macs"] = total_macs(original)

    # ---- the variants
    fns: dict[str, object] = {}
    keep: dict[str, object] = {}
    for fold in (True, False):
        graph = run_passes(original, fold=fold)
        build = build_keras_model(graph)
        model = build.model
        tag = "folded" if fold else "unfolded"
        keep[tag] = (graph, build)
        fns[f"{tag}/eager"] = lambda t, model=model: model(t, training=False)
        fns[f"{tag}/tf.function"] = tf.function(lambda t, model=model: model(t, training=False), autograph=False)
        if p["xla"] and fold:
            fns[f"{tag}/tf.function+XLA"] = tf.function(lambda t, model=model: model(t, training=False),
                                                        jit_compile=True, autograph=False)
    if p.get("saved_model"):
        try:
            t0 = time.perf_counter()
            loaded = tf.saved_model.load(p["saved_model"])
            out["saved_model_load_s"] = time.perf_counter() - t0
            sig = loaded.signatures["serving_default"]
            (out_name,) = list(sig.structured_outputs)
            fns["folded/SavedModel serving_default"] = lambda t, sig=sig, k=out_name: sig(t)[k]
        except Exception as exc:  # noqa: BLE001
            out["saved_model_error"] = f"{type(exc).__name__}: {exc}"
    variants: dict[str, dict] = {}
    for key, f in list(fns.items()):
        try:
            t0 = time.perf_counter()
            y = f(x)  # first call: tracing / compiling; its output is checked against Caffe
            first = time.perf_counter() - t0
            err = _rel_err_nchw(np.transpose(np.asarray(y), (0, 3, 1, 2)), idx, val, abs_max)
            for _ in range(p["warmup"]):
                f(x)
            variants[key] = {"first_call_s": first, "rel_err": err, "times_s": [], "cpu_s": []}
        except Exception as exc:  # noqa: BLE001 - e.g. XLA cannot compile an op: report it
            variants[key] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"}
            del fns[key]
        print(f"[infer] {key}: first call {variants[key].get('first_call_s', variants[key].get('error'))}",
              file=sys.stderr, flush=True)

    # ---- interleaved rounds
    rounds: list[dict] = []
    start = time.perf_counter()
    for i in range(p["runs"]):
        rnd = {"matmul": [C.matmul_throughput(sh, 1, threads=threads, warmup=0) for sh in shapes[1:]]}
        for key, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            f(x)
            variants[key]["times_s"].append(time.perf_counter() - t0)
            variants[key]["cpu_s"].append(time.process_time() - c0)
        rounds.append(rnd)
        if time.perf_counter() - start > p["budget_s"] and i >= 1:
            break
    for key, r in variants.items():
        if "error" in r:
            continue
        s = sorted(r["times_s"])
        r.update(best_s=s[0], median_s=s[len(s) // 2], runs=len(s), best_cpu_s=min(r["cpu_s"]) / threads,
                 cpu_share=sum(r["cpu_s"]) / sum(r["times_s"]) / threads)
    out["variants"] = variants
    out["round_matmuls"] = [m for rnd in rounds for m in rnd["matmul"]]
    out["rounds"] = len(rounds)
    out["profile"] = None
    if p["profile"]:
        graph, build = keep["folded"]
        out["profile"] = _profile_layers(build.model, x, build, graph)
    del fns, keep
    out["matmul_after"] = [C.matmul_throughput(sh, p["matmul_reps"], threads=threads) for sh in shapes]
    out["numpy_gflops"] = C.numpy_matmul_throughput(shapes[0][0])
    if p.get("explore"):
        out["explore"] = _explore(tf, p)
    return out


def _explore(tf, p: dict) -> dict:
    """Micro-benchmarks of alternative formulations of PSPNet's costliest layers."""
    import numpy as np

    rng = np.random.default_rng(0)
    res: dict[str, dict] = {}
    threads = p["threads"]

    def bench(name, f, *args, macs=None):
        ff = tf.function(f, autograph=False)
        try:
            ff(*args)
        except Exception as exc:  # noqa: BLE001 - e.g. an op without a CPU kernel: report it
            res[name] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"}
            return
        r = C.time_runs(lambda: ff(*args), warmup=1, runs=5, budget_s=10, threads=threads)
        res[name] = {"best_s": r["best_s"], "median_s": r["median_s"], "best_cpu_s": r["best_cpu_s"]}
        if macs:
            res[name]["gflops"] = 2 * macs / r["best_s"] / 1e9
            res[name]["gflops_cpu"] = 2 * macs / r["best_cpu_s"] / 1e9

    # Dilated 3x3 convs of layer 4 (d2, 256 ch) and 5 (d4, 512 ch) at 60x60.
    for c, d in ((256, 2), (512, 4)):
        x = tf.constant(rng.normal(size=(1, 60, 60, c)).astype(np.float32))
        w = tf.constant(rng.normal(size=(3, 3, c, c)).astype(np.float32) * 0.01)
        macs = 60 * 60 * c * c * 9
        bench(f"d{d} c{c}: Keras/tf.nn.convolution SAME (SpaceToBatchND path)", lambda t, w=w, d=d: tf.nn.convolution(
            t, w, padding="SAME", dilations=d), x, macs=macs)
        bench(f"d{d} c{c}: raw Conv2D op SAME dilations attr", lambda t, w=w, d=d: tf.nn.conv2d(
            t, w, 1, "SAME", dilations=d), x, macs=macs)

        def s2b(t, w=w, d=d):  # explicit: (d*d) phases, each a plain 3x3 conv, pad 1
            t = tf.pad(t, [[0, 0], [d, d], [d, d], [0, 0]])
            h = t.shape[1]
            b = tf.space_to_batch(t, [d, d], [[0, (-h) % d], [0, (-h) % d]])
            y = tf.nn.conv2d(b, w, 1, "VALID")
            return tf.batch_to_space(y, [d, d], [[0, 0], [0, 0]])
        bench(f"d{d} c{c}: pad + SpaceToBatch + 3x3 VALID + BatchToSpace", s2b, x, macs=macs)
        # the same multiply-adds without dilation: what the dilated conv should cost at best
        bench(f"d{d} c{c}: undilated 3x3 SAME (reference cost)", lambda t, w=w: tf.nn.conv2d(t, w, 1, "SAME"),
              x, macs=macs)
    # A 1x1 conv of layer 5 as Conv2D and as the plain matmul it is.
    x = tf.constant(rng.normal(size=(1, 60, 60, 512)).astype(np.float32))
    w1 = tf.constant(rng.normal(size=(1, 1, 512, 2048)).astype(np.float32) * 0.01)
    macs1 = 3600 * 512 * 2048
    bench("1x1 512->2048 @60x60: Conv2D", lambda t: tf.nn.conv2d(t, w1, 1, "VALID"), x, macs=macs1)
    wm = tf.reshape(w1, (512, 2048))
    bench("1x1 512->2048 @60x60: matmul", lambda a: tf.matmul(a, wm), tf.reshape(x, (3600, 512)), macs=macs1)
    # Conv + bias + ReLU: Keras adds its bias with AddV2 of a (1, 1, 1, C) tensor; Grappler's
    # remapper fuses Conv2D + BiasAdd (+ Relu) into one _FusedConv2D kernel.
    for (hw, cin, cout, k) in ((119, 128, 64, 1), (60, 512, 2048, 1), (119, 64, 64, 3)):
        xb = tf.constant(rng.normal(size=(1, hw, hw, cin)).astype(np.float32))
        wb = tf.constant(rng.normal(size=(k, k, cin, cout)).astype(np.float32) * 0.01)
        bb = tf.constant(rng.normal(size=(cout,)).astype(np.float32))
        mb = hw * hw * cin * cout * k * k
        tag = f"conv{k}x{k} {cin}->{cout} @{hw}x{hw} + bias + ReLU"
        bench(f"{tag}: AddV2 (Keras)", lambda t, wb=wb, bb=bb: tf.nn.relu(
            tf.nn.conv2d(t, wb, 1, "SAME") + tf.reshape(bb, (1, 1, 1, -1))), xb, macs=mb)
        bench(f"{tag}: BiasAdd", lambda t, wb=wb, bb=bb: tf.nn.relu(
            tf.nn.bias_add(tf.nn.conv2d(t, wb, 1, "SAME"), bb)), xb, macs=mb)
    # PSPNet's costliest layer, conv5_4 (3x3, 4096 -> 512 at 60x60, 42% of all multiply-adds):
    # direct vs Winograd F(2x2, 3x3) written in TF ops (what OpenCV's Winograd does, natively).
    xw = tf.constant(rng.normal(size=(1, 60, 60, 4096)).astype(np.float32))
    ww = (rng.normal(size=(3, 3, 4096, 512)) / np.sqrt(9 * 4096)).astype(np.float32)
    wt, U = tf.constant(ww), tf.constant(_winograd_f23_weights(ww))
    m54 = 60 * 60 * 4096 * 512 * 9
    bench("conv5_4 3x3 4096->512: direct Conv2D", lambda t: tf.nn.conv2d(t, wt, 1, "SAME"), xw, macs=m54)
    winox = tf.function(lambda t: _winograd_f23_conv(t, U), jit_compile=True)
    bench("conv5_4 3x3 4096->512: Winograd F(2x2,3x3) under XLA", winox, xw, macs=m54)
    bench("conv5_4 3x3 4096->512: its 16 GEMMs alone (900x4096 @ 4096x512)", lambda a: tf.matmul(a, U),
          tf.constant(rng.normal(size=(16, 900, 4096)).astype(np.float32)), macs=16 * 900 * 4096 * 512)
    try:
        d = tf.nn.conv2d(xw, wt, 1, "SAME")
        res["conv5_4 3x3 4096->512: Winograd F(2x2,3x3) under XLA"]["rel_err_vs_take"] = float(
            tf.reduce_max(tf.abs(winox(xw) - d)) / tf.reduce_max(tf.abs(d)))
    except Exception as exc:  # noqa: BLE001
        res["conv5_4 3x3 4096->512: Winograd F(2x2,3x3) under XLA"]["error"] = str(exc)
    del xw, U, wt
    # Final Interp 60x60x150 -> 473x473: gather formulation vs tf.image.resize (align_corners not in TF2).
    from caffe2tf.backend.layers import CaffeInterp

    xi = tf.constant(rng.normal(size=(1, 60, 60, 150)).astype(np.float32))
    layer = CaffeInterp((473, 473))
    layer.build(xi.shape)
    bench("Interp 60->473 x150: CaffeInterp (take)", lambda t: layer(t), xi)
    bench("Interp 60->473 x150: tf.compat.v1 resize_bilinear align_corners",
          lambda t: tf.compat.v1.image.resize_bilinear(t, (473, 473), align_corners=True), xi)
    try:
        ref = layer(xi)
        res["Interp 60->473 x150: tf.compat.v1 resize_bilinear align_corners"]["rel_err_vs_take"] = float(
            tf.reduce_max(tf.abs(tf.compat.v1.image.resize_bilinear(xi, (473, 473), align_corners=True) - ref))
            / tf.reduce_max(tf.abs(ref)))
    except Exception as exc:  # noqa: BLE001
        res["Interp 60->473 x150: tf.compat.v1 resize_bilinear align_corners"]["error"] = str(exc)
    tables = layer._tables

    def interp_matmul(t):  # align-corners as two dense interpolation matrices
        def mat(tab, n_in):
            i0, i1, w0, w1 = tab
            m = np.zeros((len(i0), n_in), np.float32)
            np.add.at(m, (np.arange(len(i0)), i0), w0)
            np.add.at(m, (np.arange(len(i1)), i1), w1)
            return tf.constant(m)
        mh, mw = mat(tables[0], 60), mat(tables[1], 60)
        y = tf.einsum("wj,bijc->biwc", mw, t)
        return tf.einsum("hi,biwc->bhwc", mh, y)
    bench("Interp 60->473 x150: two einsum matmuls", interp_matmul, xi)
    try:
        ref = layer(xi)
        res["Interp 60->473 x150: two einsum matmuls"]["rel_err_vs_take"] = float(
            tf.reduce_max(tf.abs(interp_matmul(xi) - ref)) / tf.reduce_max(tf.abs(ref)))
    except Exception as exc:  # noqa: BLE001
        res["Interp 60->473 x150: two einsum matmuls"]["error"] = str(exc)
    return res


_WG = ([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])  # Winograd F(2x2, 3x3) weight transform G


def _winograd_f23_weights(w):
    """HWIO 3x3 kernel -> the 16 transformed (Cin, Cout) matrices U = G w G^T (float64, rounded once)."""
    import numpy as np

    g = np.asarray(_WG, np.float64)
    u = np.einsum("ik,klco,jl->ijco", g, np.asarray(w, np.float64), g)
    return u.reshape(16, *w.shape[2:]).astype(np.float32)


def _winograd_f23_conv(x, U):
    """3x3 stride-1 'same' conv of an NHWC tensor (even H, W) by Winograd F(2x2, 3x3): input
    tiles 4x4 (stride 2) -> B^T d B, 16 GEMMs with U, output A^T M A -> 2x2 tiles."""
    import tensorflow as tf

    _, h, w, c = x.shape
    th, tw = h // 2, w // 2
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = [xp[:, i:i + 2 * th:2, :, :] for i in range(4)]
    r = [rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3]]
    v = []
    for ri in r:
        cols = [ri[:, :, j:j + 2 * tw:2, :] for j in range(4)]
        v += [cols[0] - cols[2], cols[1] + cols[2], cols[2] - cols[1], cols[1] - cols[3]]
    m = tf.reshape(tf.matmul(tf.reshape(tf.stack(v), (16, th * tw, c)), U), (4, 4, th, tw, -1))
    a = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
    y = tf.stack([tf.stack([ai[0] + ai[1] + ai[2], ai[1] - ai[2] - ai[3]]) for ai in a])  # (2, 2, th, tw, Co)
    return tf.reshape(tf.transpose(y, (2, 0, 3, 1, 4)), (1, h, w, -1))


def task_opencv(p: dict) -> dict:
    import numpy as np

    try:
        import cv2
    except ImportError as exc:
        return {"skipped": f"cv2 not importable ({exc}); pip install 'opencv-python-headless<5'"}
    threads = p["threads"]
    cv2.setNumThreads(threads)
    from caffe2tf.passes import run_passes
    from caffe2tf.frontend.prototxt_writer import write_net
    from caffe2tf.frontend.reader import load_net

    out: dict = {"cv2_version": cv2.__version__, "cv2_threads": cv2.getNumThreads()}
    t0 = time.perf_counter()
    graph = run_passes(load_net(p["prototxt"], p["caffemodel"]))
    left = sorted({n.type for n in graph.nodes} & {"BN", "BatchNorm", "Scale"})
    if left:
        return {"error": f"layers OpenCV cannot run are left after folding: {left}"}
    work = Path(p["tmp"])
    proto, model = write_net(graph, work / "folded.prototxt", work / "folded.caffemodel", strip_training=True)
    out["fold_write_s"] = time.perf_counter() - t0
    out["folded_layers"] = sum(len(n.folded) for n in graph.nodes)
    x, idx, val, abs_max, _, _ = _reference(Path(p["case"]))
    runs = {}
    for wino in (False, True):
        # A fresh net per setting: OpenCV picks each conv's algorithm (Winograd or not) when
        # the layer is first initialised, so switching after a forward pass changes nothing.
        t0 = time.perf_counter()
        try:
            net = cv2.dnn.readNetFromCaffe(str(proto), str(model))
        except cv2.error as exc:
            return {**out, "error": f"cv2.dnn.readNetFromCaffe failed: {str(exc).strip().splitlines()[-1]}"}
        out["load_s"] = time.perf_counter() - t0
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        net.enableWinograd(wino)

        def fwd():
            net.setInput(x)
            return net.forward()

        t0 = time.perf_counter()
        y = fwd()  # first call: allocation and per-layer setup
        first = time.perf_counter() - t0
        err = _rel_err_nchw(y, idx, val, abs_max)
        r = C.time_runs(fwd, warmup=0, runs=p["runs"], budget_s=p["budget_s"], threads=threads)
        r.update(first_call_s=first, rel_err=err, out_shape=list(y.shape))
        # Per-layer-type breakdown of OpenCV's last forward.
        total_ticks, layer_ticks = net.getPerfProfile()
        freq = cv2.getTickFrequency()
        names = net.getLayerNames()
        by_type: dict[str, float] = {}
        for name, ticks in zip(names, np.asarray(layer_ticks).reshape(-1)):
            ltype = net.getLayer(name).type
            by_type[ltype] = by_type.get(ltype, 0.0) + float(ticks) / freq
        r["by_type_s"] = dict(sorted(by_type.items(), key=lambda kv: -kv[1]))
        r["profile_total_s"] = float(total_ticks) / freq
        runs[f"winograd {'on' if wino else 'off'}"] = r
        print(f"[opencv] winograd {wino}: {r['best_s']:.3f} s", file=sys.stderr, flush=True)
        del net
    out["runs"] = runs
    return out


TASKS = {"convert": task_convert, "baseline": task_baseline, "infer": task_infer, "opencv": task_opencv}


# =========================================================================== report

def _r(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _ok(cond: bool | None) -> str:
    return "n/a " if cond is None else ("PASS" if cond else "FAIL")


def _f(v: float | None, spec: str = ".2f", na: str = "n/a") -> str:
    return na if v is None else format(v, spec)


def report(res: dict, args) -> list[str]:
    """The printed report. Wall times are the goals' measure; "CPU/thr" (process CPU
    seconds / threads) is what a run would take with the cores to itself, shown
    because the machine may be shared."""
    L: list[str] = []
    add = L.append
    m = res["machine"]
    add("=" * 104)
    add(f"PSPNet-50 ADE20K 473x473 — caffe2tf conversion & inference benchmark   ({time.strftime('%Y-%m-%d %H:%M')})")
    add(f"machine: {m.get('cpu')} | {m['cpus']} CPUs | SIMD {','.join(m.get('simd', []))} | threads: "
        f"{args.threads} intra-op, 1 inter-op | load avg {m['loadavg'][0]:.2f} at start, "
        f"{res.get('loadavg_end', [float('nan')])[0]:.2f} at end")
    add(f"caffemodel: {res['caffemodel']} ({C.fmt_bytes(res['caffemodel_bytes'])})"
        + (f", rebuilt from the recipe in {res['synth_s']:.1f} s" if res.get("synth_s") else " (cached)"))
    add("wall = elapsed seconds (what the goals measure); CPU/thr = process CPU seconds / threads, i.e. the time")
    add("with the cores to itself; CPU share = CPU/thr / wall: well below 1 means other processes held the cores,")
    add("and wall times (and wall-based ratios against numbers taken at other moments) are inflated.")

    # ---- 1. conversion
    cv, bl = res.get("convert", {}), res.get("baseline", {})
    add("")
    add("-- 1. Conversion: convert() in a fresh process, after the imports " + "-" * 37)
    conv = conv_cpu = base = base_cpu = base_own = None
    thr = args.threads
    if "error" in cv:
        add(f"   ERROR: {cv['error']}")
    elif cv:
        t, sc = cv["timings"], cv.get("stage_cpu_s", {})
        conv = cv["total_s"]
        conv_cpu = sum(sc.values()) if sc else None
        add(f"   imports (tensorflow, keras, caffe2tf; not counted): {cv['import_s']:.2f} s")
        add("   (conversion is mostly single-threaded Python, so its CPU seconds — not divided by the threads —")
        add("   are what it would take on an idle machine, give or take the parts TensorFlow runs on 2 threads)")
        add(f"   {'stage':<8}{'wall s':>8}{'CPU s':>9}   peak RSS sampled in the stage")
        for st in t:
            add(f"   {st:<8}{t.get(st, float('nan')):8.2f}{_f(sc.get(st) if st in sc else None):>9}   "
                f"{C.fmt_bytes(cv['stage_peaks'].get(st, 0))}")
        ss = cv.get("save_split", {})
        if ss:
            add(f"     save = model.keras {ss.get('model_keras', 0):.2f} s wall ({ss.get('model_keras_cpu', 0):.2f} CPU) "
                f"+ SavedModel {ss.get('saved_model', 0):.2f} s wall ({ss.get('saved_model_cpu', 0):.2f} CPU)")
        add(f"   {'total':<8}{conv:8.2f}{_f(conv_cpu):>9}   (CPU s / wall s {cv['cpu_s'] / conv:.2f}; record + rename "
            "included; files: " + ", ".join(f"{k} {C.fmt_bytes(v)}" for k, v in cv["output_sizes"].items()) + ")")
        peak = cv["maxrss_end"]
        add(f"   peak RSS (getrusage high-water mark) {C.fmt_bytes(peak)}; RSS after imports "
            f"{C.fmt_bytes(cv['rss_after_imports'])} -> the conversion itself adds {C.fmt_bytes(peak - cv['rss_after_imports'])}")
    if "error" in bl:
        add(f"   baseline ERROR: {bl['error']}")
    elif bl:
        bt, bc = bl["timings"], bl["cpu_s"]
        sz = bl.get("sizes", {})
        base = bt["read_caffemodel"] + bt["save_saved_model_lean"]
        base_cpu = bc["read_caffemodel"] + bc["save_saved_model_lean"]
        base_own = bt["read_caffemodel"] + bt["save_saved_model"]
        base_own_cpu = bc["read_caffemodel"] + bc["save_saved_model"]
        add("   baseline, another fresh process (the same net's Keras model built beforehand, untimed):")
        for k, label in (("read_caffemodel", f"read_caffemodel ({C.fmt_bytes(bl['weight_bytes'])} float32)"),
                         ("save_saved_model_lean", "SavedModel, lean: tf.Module, 1 trace"
                          + (f" ({C.fmt_bytes(sz['lean_saved_model'])})" if "lean_saved_model" in sz else "")),
                         ("save_saved_model", "SavedModel, convert's exporter"
                          + (f" ({C.fmt_bytes(sz['saved_model'])})" if "saved_model" in sz else "")),
                         ("save_keras", "model.keras save"), ("prototxt_only", "prototxt parse + shapes")):
            add(f"     {label:<50}{bt[k]:8.2f} s wall {bc[k]:8.2f} s CPU")
        add(f"   read + lean SavedModel = {base:.2f} s wall, {base_cpu:.2f} s CPU (the goal's denominator); with "
            f"convert's exporter {base_own:.2f} s wall, {base_own_cpu:.2f} s CPU")

    # ---- 2. matmul
    inf = res.get("infer", {})
    add("")
    add("-- 2. Matmul throughput and the physical lower bound " + "-" * 51)
    if not inf:
        add("   not run (--peers-only): the peers table below measures the bound beside its runtimes")
    bound = bound_cpu = rate = rate_cpu = None
    if "error" in inf:
        add(f"   ERROR: {inf['error']}")
    elif inf:
        mms = inf["matmul_before"] + inf["matmul_after"] + inf.get("round_matmuls", [])
        rate = max(x["gflops_best"] for x in mms) * 1e9
        rate_cpu = max(x["gflops_cpu"] for x in mms) * 1e9
        for when, lst in (("before", inf["matmul_before"]), ("after", inf["matmul_after"])):
            for x in lst:
                mk = f"{x['shape'][0]}x{x['shape'][1]} @ {x['shape'][1]}x{x['shape'][2]}"
                add(f"   tf.matmul {mk:<22} {when:<6} best of {x['reps']}: {x['gflops_best']:6.1f} GFLOP/s "
                    f"wall (median {x['gflops_median']:6.1f}), {x['gflops_cpu']:6.1f} per CPU/thr; "
                    f"CPU share {x['cpu_share']:.2f}")
        if inf.get("round_matmuls"):
            rm = inf["round_matmuls"]
            add(f"   + one matmul of each smaller shape per timing round ({len(rm)} runs): best "
                f"{max(x['gflops_best'] for x in rm):.1f} GFLOP/s wall, {max(x['gflops_cpu'] for x in rm):.1f} per CPU/thr")
        add(f"   (NumPy/OpenBLAS 4096^3 matmul, same machine, for reference only: {inf['numpy_gflops']:.1f} GFLOP/s wall)")
        add("   the machine's matmul rate = the best of these tf.matmul runs (wall, and per CPU/thr)")
        macs = inf["macs"]
        bound, bound_cpu = 2 * macs / rate, 2 * macs / rate_cpu
        add(f"   PSPNet-50 @473: {macs / 1e9:.1f} G multiply-adds = {2 * macs / 1e9:.1f} GFLOP -> bound "
            f"{bound:.3f} s at {rate / 1e9:.1f} GFLOP/s (wall); {bound_cpu:.3f} s at {rate_cpu / 1e9:.1f} (CPU/thr)")

    # ---- 3. inference
    best_ours = best_ours_cpu = None
    if inf and "error" not in inf:
        add("")
        add("-- 3. Converted-model inference: 1x473x473x3 in, 1x473x473x150 out " + "-" * 35)
        add(f"   {inf.get('rounds', '?')} interleaved rounds (every variant once per round) after each variant's "
            f"untimed first call (tracing/compiling); TF {inf.get('tf_version')}, TF_ENABLE_ONEDNN_OPTS="
            f"{inf.get('onednn_env') or 'unset (TF default: off on this CPU)'}")
        if inf.get("saved_model_error"):
            add(f"   SavedModel: ERROR {inf['saved_model_error']}")
        add(f"   {'variant':<35}{'best s':>8}{'median':>8}{'runs':>5}{'1st call':>9}{'CPU/thr':>8}{'share':>6}"
            f"{'bnd/best':>9}{'(CPU)':>7}{'rel err':>9}")
        ok = {}
        for k, r in inf["variants"].items():
            if "error" in r:
                add(f"   {k:<35} ERROR {r['error']}")
                continue
            ok[k] = r
            add(f"   {k:<35}{r['best_s']:8.3f}{r['median_s']:8.3f}{r['runs']:5d}{r['first_call_s']:9.2f}"
                f"{r['best_cpu_s']:8.3f}{r['cpu_share']:6.2f}{bound / r['best_s']:9.1%}"
                f"{bound_cpu / r['best_cpu_s']:7.1%}{r['rel_err']:9.1e}")
        add("   (rel err = max|ours - Caffe| at the reference's 4096 sampled outputs / max|Caffe output|; "
            "tolerance 2e-4)")
        if ok:
            bk = min(ok, key=lambda k: ok[k]["best_s"])
            bkc = min(ok, key=lambda k: ok[k]["best_cpu_s"])
            best_ours, best_ours_cpu = ok[bk]["best_s"], ok[bkc]["best_cpu_s"]
            add(f"   fastest: {bk} {best_ours:.3f} s wall = {bound / best_ours:.1%} of matmul throughput;  "
                f"by CPU/thr: {bkc} {best_ours_cpu:.3f} s = {bound_cpu / best_ours_cpu:.1%}")

            def ratio(a, b, key):
                return f"{ok[a][key] / ok[b][key]:.2f}x" if a in ok and b in ok else "n/a"
            for key, label in (("best_s", "wall"), ("best_cpu_s", "CPU/thr")):
                add(f"   ratios ({label}): unfolded/folded eager {ratio('unfolded/eager', 'folded/eager', key)}, "
                    f"tf.function {ratio('unfolded/tf.function', 'folded/tf.function', key)}; eager/tf.function "
                    f"(folded) {ratio('folded/eager', 'folded/tf.function', key)}; tf.function/XLA "
                    f"{ratio('folded/tf.function', 'folded/tf.function+XLA', key)}; SavedModel/tf.function "
                    f"{ratio('folded/SavedModel serving_default', 'folded/tf.function', key)}")
        prof = inf.get("profile")
        if prof:
            add("")
            add(f"   where the time goes: eager per-layer profile of the folded model (min of 2 runs; sums "
                f"{prof['total_s']:.3f} s wall, {prof['total_cpu']:.3f} s CPU/thr over {prof['rows']} Keras layers)")
            add(f"   {'layer kind':<26}{'n':>4}{'wall s':>8}{'CPU/thr':>8}{'share':>7}{'G MAC':>7}{'GFLOP/s':>9}"
                f"{'of matmul':>10}   (rates per CPU/thr)")
            for kind, k in sorted(prof["by_kind"].items(), key=lambda kv: -kv[1]["cpu"]):
                gf = 2 * k["macs"] / k["cpu"] / 1e9 if k["macs"] and k["cpu"] else None
                add(f"   {kind:<26}{k['n']:4d}{k['s']:8.3f}{k['cpu']:8.3f}{k['cpu'] / prof['total_cpu']:7.1%}"
                    f"{k['macs'] / 1e9:7.2f}" + (f"{gf:9.1f}{gf * 1e9 / rate_cpu:10.1%}" if gf else ""))
            add("   slowest layers (by CPU/thr):")
            for r in sorted(prof["top"], key=lambda r: -r["cpu"])[:10]:
                gf = 2 * r["macs"] / r["cpu"] / 1e9 if r["macs"] and r["cpu"] else None
                add(f"     {r['keras']:<26}{r['kind']:<20}{r['s']:7.3f} s wall {r['cpu']:7.3f} s CPU/thr"
                    + (f"  {gf:6.1f} GFLOP/s ({gf * 1e9 / rate_cpu:.0%})" if gf else "") + f"  out {r['out_shape']}")
        if inf.get("explore"):
            add("")
            add("   alternatives (micro-benchmarks under tf.function, best of up to 5; GFLOP/s per CPU/thr, counting")
            add("   the direct convolution's multiply-adds, so a faster algorithm shows as a higher rate):")
            for k, r in inf["explore"].items():
                if "best_s" not in r:
                    add(f"     {k:<64} ERROR {r.get('error')}")
                    continue
                add(f"     {k:<64}{r['best_s']:8.4f} s wall {r['best_cpu_s']:8.4f} s CPU/thr"
                    + (f" {r['gflops_cpu']:6.1f} GFLOP/s" if "gflops_cpu" in r else "")
                    + (f"  max rel diff {r['rel_err_vs_take']:.1e}" if "rel_err_vs_take" in r else "")
                    + (f"  ERROR {r['error']}" if "error" in r else ""))

    # ---- 4. OpenCV
    ocv = res.get("opencv", {})
    best_cv = best_cv_cpu = None
    add("")
    add("-- 4. OpenCV dnn on the same weights " + "-" * 67)
    if not ocv:
        add("   not run (--no-opencv or --peers-only)")
    elif "skipped" in ocv:
        add(f"   skipped: {ocv['skipped']}")
    elif "error" in ocv:
        add(f"   ERROR: {ocv['error']}")
    else:
        add(f"   OpenCV {ocv['cv2_version']}, cv2.setNumThreads({args.threads}) -> getNumThreads() = "
            f"{ocv['cv2_threads']}, DNN_BACKEND_OPENCV / DNN_TARGET_CPU")
        add(f"   how it is made fair: OpenCV cannot run PSPNet's BN, so its {ocv['folded_layers']} BN layers were "
            "folded into the convs before them")
        add("   by caffe2tf's own fold pass (float64, rounded once to float32) — the exact weights our folded model "
            "runs with — and written")
        add(f"   out with prototxt_writer + caffemodel_writer ({ocv['fold_write_s']:.1f} s, untimed). Both get the "
            "same input array (the reference")
        add("   input; NCHW for OpenCV, NHWC for us), compute the same output (conv6_interp, 150x473x473, no "
            "argmax), run in a fresh")
        add("   process with the same thread count; first call excluded, best of the timed runs; errors against "
            "the same reference samples.")
        for k, r in ocv["runs"].items():
            top = ", ".join(f"{t} {v:.2f}" for t, v in list(r["by_type_s"].items())[:4])
            add(f"   {k:<13} best {r['best_s']:7.3f} s wall (median {r['median_s']:.3f}, {r['runs']} runs, 1st call "
                f"{r['first_call_s']:.2f}), {r['best_cpu_s']:.3f} s CPU/thr, share {r['cpu_share']:.2f}, "
                f"rel err {r['rel_err']:.1e}")
            add(f"   {'':<13} OpenCV's own per-type profile of the last run (s): {top}")
        best_cv = min(r["best_s"] for r in ocv["runs"].values())
        best_cv_cpu = min(r["best_cpu_s"] for r in ocv["runs"].values())
        if best_ours:
            add(f"   ours / OpenCV (best of Winograd off/on): {best_ours / best_cv:.2f}x wall, "
                f"{best_ours_cpu / best_cv_cpu:.2f}x CPU/thr  (OpenCV is {best_cv / best_ours:.2f}x / "
                f"{best_cv_cpu / best_ours_cpu:.2f}x slower)")

    # ---- 4b. peers
    pr = res.get("peers")
    if pr:
        import _peers

        add("")
        add("-- 4b. Peers on the SavedModel convert wrote: TF oneDNN unset/0/1 and onnxruntime " + "-" * 21)
        if "error" in pr.get("table", {}):
            add(f"   ERROR: {pr['table']['error']}")
        else:
            L.extend(_peers.report_lines(pr["table"], pr["macs"], args.threads, pr.get("onnx_export")))

    # ---- 5. goals
    add("")
    add("-- 5. Goals (verdict on wall time; in brackets: CPU s for conversion, CPU/thr for inference) " + "-" * 9)
    peak = cv.get("maxrss_end") if cv and "error" not in cv else None
    q = lambda a, b: a / b if a and b else None  # noqa: E731
    r1, r1c = q(conv, base), q(conv_cpu, base_cpu)
    r2 = q(conv, base_own) if bl and "error" not in bl else None
    add(f"   {_ok(r1 < GOALS['convert_vs_read_save'] if r1 else None)}  conversion / (read + lean SavedModel) = "
        f"{_f(r1)}x [{_f(r1c)}x]  ({_f(conv)} s / {_f(base)} s; goal < 2x; against convert's own exporter "
        f"{_f(r2)}x)")
    add(f"   {_ok(conv <= GOALS['convert_s'] if conv else None)}  conversion {_f(conv)} s [{_f(conv_cpu)} s] "
        f"(goal <= {GOALS['convert_s']:g} s)")
    add(f"   {_ok(peak <= GOALS['convert_peak_rss'] if peak else None)}  conversion peak RSS "
        f"{C.fmt_bytes(peak) if peak else 'n/a'}, of which {C.fmt_bytes(cv.get('rss_after_imports', 0))} after "
        f"the imports (goal <= {C.fmt_bytes(GOALS['convert_peak_rss'])})")
    f1, f1c = q(bound, best_ours), q(bound_cpu, best_ours_cpu)
    add(f"   {_ok(f1 >= GOALS['matmul_fraction'] if f1 else None)}  inference {_f(best_ours, '.3f')} s "
        f"[{_f(best_ours_cpu, '.3f')} s] = {_f(f1, '.1%')} [{_f(f1c, '.1%')}] of matmul throughput "
        f"(bound {_f(bound, '.3f')} s [{_f(bound_cpu, '.3f')} s]; goal >= 75%)")
    o1, o1c = q(best_ours, best_cv), q(best_ours_cpu, best_cv_cpu)
    add(f"   {_ok(o1 <= GOALS['vs_opencv'] if o1 else None)}  inference / OpenCV dnn = {_f(o1)}x [{_f(o1c)}x] "
        "(goal <= 0.5x)")
    pt = (res.get("peers") or {}).get("table") or {}
    prt = pt.get("runtimes", {})
    tfd = prt.get(_PEER_DEFAULT, {})
    orr = next((r for r in prt.values() if r.get("kind") == "ort" and "best_s" in r), {})
    if "best_s" in tfd:
        pb = 2 * res["peers"]["macs"] / (pt["matmul_gflops_wall"] * 1e9) if pt.get("matmul_gflops_wall") else None
        pbc = 2 * res["peers"]["macs"] / (pt["matmul_gflops_cpu"] * 1e9) if pt.get("matmul_gflops_cpu") else None
        f2, f2c = q(pb, tfd["best_s"]), q(pbc, tfd["best_cpu_s"])
        add(f"   {_ok(f2 >= GOALS['peer_matmul_fraction'] if f2 else None)}  SavedModel, TF defaults: "
            f"{tfd['best_s']:.3f} s [{tfd['best_cpu_s']:.3f} s] = {_f(f2, '.1%')} [{_f(f2c, '.1%')}] of the bound "
            "measured beside it (goal >= 95%)")
        o2, o2c = q(tfd["best_s"], orr.get("best_s")), q(tfd["best_cpu_s"], orr.get("best_cpu_s"))
        add(f"   {_ok(o2 <= GOALS['vs_onnxruntime'] if o2 else None)}  SavedModel (TF defaults) / onnxruntime = "
            f"{_f(o2)}x [{_f(o2c)}x] (goal <= 1.05x)")
    add(f"   benchmark wall time: {res['wall_s']:.0f} s")
    add("=" * 104)
    return L


# =========================================================================== peers

def _run_peers(saved: Path, work: Path, args) -> dict:
    """tf2onnx export, then TF default / oneDNN 0 / oneDNN 1 / onnxruntime side by side."""
    import numpy as np

    import _peers

    from caffe2tf.frontend.reader import load_net
    from caffe2tf.frontend.summary import total_macs

    out: dict = {"macs": total_macs(load_net(str(CASE / "net.prototxt")))}
    print("[bench] tf2onnx export of the SavedModel ...", file=sys.stderr, flush=True)
    onnx_path = work / "model.onnx"
    out["onnx_export"] = _peers.export_onnx(saved, onnx_path, threads=args.threads)
    x_nchw, idx, val, abs_max, _, _ = _reference(CASE)

    def vs_caffe(y_nhwc) -> float:
        return _rel_err_nchw(np.transpose(y_nhwc, (0, 3, 1, 2)), idx, val, abs_max)

    print("[bench] peers: TF default / oneDNN 0 / oneDNN 1 / onnxruntime ...", file=sys.stderr, flush=True)
    rounds = 2 if args.quick else args.peer_rounds
    out["table"] = _peers.run_peers(saved, onnx_path if onnx_path.is_file() else None, work,
                                    threads=args.threads, rounds=rounds, budget_s=60.0 if args.quick else 600.0,
                                    x_nhwc=np.transpose(x_nchw, (0, 2, 3, 1)), reference=vs_caffe)
    return out


# =========================================================================== main

def main(argv: list[str]) -> int:
    if C.child_main(TASKS, argv):
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer runs, smaller matmul (smoke test)")
    ap.add_argument("--no-opencv", action="store_true")
    ap.add_argument("--no-xla", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--explore", action="store_true", help="micro-benchmark alternative layer formulations")
    ap.add_argument("--onednn", choices=("default", "0", "1"), default="default",
                    help="TF_ENABLE_ONEDNN_OPTS for the inference process")
    ap.add_argument("--no-peers", action="store_true", help="skip the TF oneDNN on/off + onnxruntime table")
    ap.add_argument("--peers-only", action="store_true", help="only convert, then the peers table")
    ap.add_argument("--peer-rounds", type=int, default=8, help="alternating rounds of the peers table")
    ap.add_argument("--json", type=Path, help="also write every number as JSON here")
    ap.add_argument("--from-json", type=Path, help="only print the report of an earlier --json file")
    args = ap.parse_args(argv[1:])
    if args.from_json:
        print("\n".join(report(json.loads(args.from_json.read_text()), args)))
        return 0
    t_start = time.perf_counter()
    res: dict = {"machine": C.machine_info()}
    caffemodel, synth_s = C.case_caffemodel(CASE)
    res.update(caffemodel=str(caffemodel), caffemodel_bytes=caffemodel.stat().st_size, synth_s=synth_s)
    C.CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="convert_pspnet.", dir=C.CACHE))
    common = {"threads": args.threads, "prototxt": str(CASE / "net.prototxt"), "caffemodel": str(caffemodel),
              "case": str(CASE), "tmp": str(work)}
    runs, budget = (2, 30.0) if args.quick else (6, 150.0)
    try:
        print("[bench] converting in a fresh process ...", file=sys.stderr, flush=True)
        res["convert"] = C.run_child(SCRIPT, "convert", {**common, "out_dir": str(work / "converted")},
                                     threads=args.threads, timeout=600)
        saved = work / "converted" / "saved_model"
        if not args.peers_only:
            print("[bench] read + save baseline ...", file=sys.stderr, flush=True)
            res["baseline"] = C.run_child(SCRIPT, "baseline", common, threads=args.threads, timeout=600)
            print("[bench] inference ...", file=sys.stderr, flush=True)
            env = {} if args.onednn == "default" else {"TF_ENABLE_ONEDNN_OPTS": args.onednn}
            res["infer"] = C.run_child(SCRIPT, "infer", {
                **common, "matmul_shapes": MATMUL_SHAPES[1:] if args.quick else MATMUL_SHAPES,
                "matmul_reps": 3 if args.quick else 5,
                "warmup": 0, "runs": runs, "budget_s": budget, "xla": not args.no_xla,
                "profile": not args.no_profile, "explore": args.explore,
                "saved_model": str(saved) if saved.is_dir() else None}, threads=args.threads, timeout=1500,
                env=env)
            if not args.no_opencv:
                print("[bench] OpenCV dnn ...", file=sys.stderr, flush=True)
                res["opencv"] = C.run_child(SCRIPT, "opencv", {**common, "runs": 4 if not args.quick else 1,
                                                                "budget_s": 30.0}, threads=args.threads,
                                            timeout=900)
        if not args.no_peers and saved.is_dir():
            res["peers"] = _run_peers(saved, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = list(os.getloadavg())
    res["wall_s"] = time.perf_counter() - t_start
    text = "\n".join(report(res, args))
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=C._json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
