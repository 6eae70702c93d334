"""Peers on the very SavedModel ``convert`` writes: TensorFlow with TF_ENABLE_ONEDNN_OPTS unset
(what a user gets), =0 and =1, and onnxruntime on a tf2onnx export of the same SavedModel —
timed side by side, alternating, one persistent fresh process per runtime.

Each runtime lives in its own worker process (``python _peers.py --worker KIND``), started
once, so its imports, thread pools and oneDNN setting belong to it alone. The parent then
runs rounds: in every round each worker makes one call (the order rotates from round to
round) while the others wait idle on their stdin, and each TensorFlow worker also times one
``tf.matmul`` of each bound shape. Best-of-rounds then compares runtimes that saw the same
mix of quiet and busy moments on a shared machine.

Honesty checks: every worker writes its first output; the parent reports each one's max
relative error against the TensorFlow-default SavedModel's output (max|a - b| / max|b| over
the whole 1x473x473x150 tensor) and against Caffe's recorded samples.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

_MARK = "@@PEER@@ "
SCRIPT = Path(__file__).resolve()
# (label, kind, extra environment). "default" leaves TF_ENABLE_ONEDNN_OPTS unset.
RUNTIMES = [
    ("TF default (ONEDNN_OPTS unset)", "tf", {}),
    ("TF ONEDNN_OPTS=0", "tf", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("TF ONEDNN_OPTS=1", "tf", {"TF_ENABLE_ONEDNN_OPTS": "1"}),
    ("onnxruntime (tf2onnx)", "ort", {}),
]
BOUND_SHAPES = [(2048, 2048, 2048), (3600, 4608, 512)]


# =========================================================================== the export

def export_onnx(saved_model: Path, out: Path, *, threads: int, opset: int = 17, timeout: float = 900) -> dict:
    """tf2onnx of ``saved_model``'s serving_default into ``out`` (a fresh process; timed)."""
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--signature_def",
           "serving_default", "--tag", "serve", "--opset", str(opset), "--output", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=C.thread_env(threads))
    except subprocess.TimeoutExpired:
        return {"error": f"tf2onnx timed out after {timeout:.0f} s"}
    res: dict[str, Any] = {"wall_s": time.perf_counter() - t0, "opset": opset, "cmd": " ".join(cmd[1:])}
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        return {**res, "error": f"tf2onnx exited {proc.returncode}:\n{tail}"}
    res["bytes"] = out.stat().st_size
    try:
        import tf2onnx

        res["tf2onnx_version"] = tf2onnx.__version__
    except Exception:  # noqa: BLE001 - only for the report
        pass
    return res


# =========================================================================== the worker

def _send(obj: dict) -> None:
    sys.stdout.write(_MARK + json.dumps(obj, default=C._json_default) + "\n")
    sys.stdout.flush()


def worker(kind: str, p: dict) -> None:
    """Load one runtime, then answer commands from stdin (one JSON object a line)."""
    import numpy as np

    threads = p["threads"]
    x = np.load(p["input_npy"])  # NHWC float32
    info: dict[str, Any] = {"kind": kind, "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    t0 = time.perf_counter()
    if kind == "tf":
        tf = C.configure_threads(threads)
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        info["import_s"] = time.perf_counter() - t0
        info["version"] = tf.__version__
        try:  # what TF itself says about oneDNN in this process
            from tensorflow.python.util import _pywrap_util_port

            info["onednn_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
        except Exception:  # noqa: BLE001 - private API; the report says n/a
            info["onednn_enabled"] = None
        t0 = time.perf_counter()
        sig = tf.saved_model.load(p["saved_model"]).signatures["serving_default"]
        (key,) = list(sig.structured_outputs)
        xt = tf.constant(x)
        info["load_s"] = time.perf_counter() - t0

        def call():
            return sig(xt)[key].numpy()
    else:
        import onnxruntime as ort

        info["import_s"] = time.perf_counter() - t0
        info["version"] = ort.__version__
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        t0 = time.perf_counter()
        sess = ort.InferenceSession(p["onnx"], so, providers=["CPUExecutionProvider"])
        info["load_s"] = time.perf_counter() - t0
        (inp,) = sess.get_inputs()
        info["onnx_input"] = [inp.name, list(inp.shape)]

        def call():
            return sess.run(None, {inp.name: x})[0]
    _send({"ready": info})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "first":
            t0 = time.perf_counter()
            y = call()
            first = time.perf_counter() - t0
            np.save(cmd["out_npy"], np.asarray(y, np.float32))
            _send({"first_call_s": first, "shape": list(y.shape)})
        elif op == "run":
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            _send({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0})
        elif op == "matmul":
            _send({"matmul": [C.matmul_throughput(tuple(s), 1, threads=threads, warmup=int(cmd.get("warmup", 0)))
                              for s in cmd["shapes"]]})


class _Worker:
    def __init__(self, label: str, kind: str, env: dict, params: dict, threads: int):
        self.label, self.kind = label, kind
        full_env = C.thread_env(threads, env)
        if "TF_ENABLE_ONEDNN_OPTS" not in env:
            full_env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--worker", kind, "--params", json.dumps(params)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=full_env,
                                     cwd=str(C.REPO), bufsize=1)

    def recv(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_MARK):
                return json.loads(line[len(_MARK):])
        raise RuntimeError(f"{self.label}: worker exited {self.proc.wait()} without an answer")

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.recv()

    def close(self) -> None:
        try:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            self.proc.kill()


# =========================================================================== the parent

def run_peers(saved_model: Path, onnx_path: Path | None, work: Path, *, threads: int, rounds: int,
              budget_s: float, x_nhwc, reference=None) -> dict:
    """Start every runtime's worker, check outputs, time ``rounds`` alternating rounds."""
    import numpy as np

    inp = work / "peer_input.npy"
    np.save(inp, np.ascontiguousarray(x_nhwc, dtype=np.float32))
    params = {"threads": threads, "input_npy": str(inp), "saved_model": str(saved_model),
              "onnx": str(onnx_path) if onnx_path else None}
    res: dict[str, Any] = {"loadavg_start": list(os.getloadavg()), "runtimes": {}}
    workers: list[_Worker] = []
    try:
        for label, kind, env in RUNTIMES:
            if kind == "ort" and onnx_path is None:
                res["runtimes"][label] = {"error": "no ONNX export"}
                continue
            if kind == "ort":
                try:
                    import onnxruntime  # noqa: F401
                except ImportError as exc:
                    res["runtimes"][label] = {"error": f"onnxruntime not importable ({exc})"}
                    continue
            w = _Worker(label, kind, env, params, threads)
            try:
                ready = w.recv()["ready"]
                first = w.ask(op="first", out_npy=str(work / f"peer_out_{len(workers)}.npy"))
            except Exception as exc:  # noqa: BLE001 - one runtime failing does not stop the others
                w.close()
                res["runtimes"][label] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            res["runtimes"][label] = {**ready, **first, "times_s": [], "cpu_s": [],
                                      "out_npy": str(work / f"peer_out_{len(workers)}.npy")}
            workers.append(w)
            print(f"[peers] {label}: ready, first call {first['first_call_s']:.2f} s", file=sys.stderr, flush=True)
        # honesty: every output against TF default's, and against Caffe's samples
        base = next((r for r in res["runtimes"].values() if "out_npy" in r), None)
        if base is not None:
            yb = np.load(base["out_npy"])
            for r in res["runtimes"].values():
                if "out_npy" not in r:
                    continue
                y = np.load(r.pop("out_npy"))
                r["rel_err_vs_tf_default"] = float(np.abs(y - yb).max() / max(float(np.abs(yb).max()), 1e-6))
                if reference is not None:
                    r["rel_err_vs_caffe"] = reference(y)
                del y
            del yb
        tf_workers = [w for w in workers if w.kind == "tf"]
        for w in tf_workers:  # warm the matmul kernels once (untimed)
            w.ask(op="matmul", shapes=BOUND_SHAPES, warmup=1)
        res["matmul"] = {w.label: [] for w in tf_workers}
        start = time.perf_counter()
        done = 0
        for i in range(rounds):
            order = workers[i % len(workers):] + workers[:i % len(workers)] if workers else []
            for w in order:
                r = w.ask(op="run")
                res["runtimes"][w.label]["times_s"].append(r["wall"])
                res["runtimes"][w.label]["cpu_s"].append(r["cpu"])
                if w.kind == "tf":
                    res["matmul"][w.label] += w.ask(op="matmul", shapes=BOUND_SHAPES)["matmul"]
            done += 1
            print(f"[peers] round {i + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            if time.perf_counter() - start > budget_s and done >= 2:
                break
        res["rounds"] = done
    finally:
        for w in workers:
            w.close()
        inp.unlink(missing_ok=True)
    for r in res["runtimes"].values():
        if r.get("times_s"):
            r.update(best_s=min(r["times_s"]), median_s=sorted(r["times_s"])[len(r["times_s"]) // 2],
                     best_cpu_s=min(r["cpu_s"]) / threads,
                     cpu_share=sum(r["cpu_s"]) / sum(r["times_s"]) / threads)
    allm = [m for lst in res.get("matmul", {}).values() for m in lst]
    if allm:
        res["matmul_gflops_wall"] = max(m["gflops_best"] for m in allm)
        res["matmul_gflops_cpu"] = max(m["gflops_cpu"] for m in allm)
        res["matmul_best_by_runtime"] = {k: max(m["gflops_best"] for m in v) for k, v in res["matmul"].items() if v}
    res["loadavg_end"] = list(os.getloadavg())
    return res


def report_lines(res: dict, macs: int, threads: int, onnx_export: dict | None) -> list[str]:
    """The side-by-side table: each runtime against the matmul bound and against onnxruntime."""
    L: list[str] = []
    add = L.append
    add(f"   {res.get('rounds', 0)} alternating rounds (order rotated each round), one persistent fresh process per "
        f"runtime, {threads} intra-op threads; load avg {res['loadavg_start'][0]:.1f} at start, "
        f"{res['loadavg_end'][0]:.1f} at end")
    if onnx_export:
        if "error" in onnx_export:
            add(f"   tf2onnx export ERROR: {onnx_export['error']}")
        else:
            add(f"   ONNX: tf2onnx {onnx_export.get('tf2onnx_version', '?')} opset {onnx_export['opset']} of "
                f"saved_model/ serving_default, {onnx_export['wall_s']:.1f} s, {C.fmt_bytes(onnx_export['bytes'])}")
    rate, rate_cpu = res.get("matmul_gflops_wall"), res.get("matmul_gflops_cpu")
    if rate:
        bound, bound_cpu = 2 * macs / (rate * 1e9), 2 * macs / (rate_cpu * 1e9)
        per = ", ".join(f"{k.replace('TF ', '')} {v:.1f}" for k, v in res["matmul_best_by_runtime"].items())
        add(f"   matmul bound: {2 * macs / 1e9:.1f} GFLOP at best tf.matmul {rate:.1f} GFLOP/s wall ({per}) -> "
            f"{bound:.3f} s; per CPU/thr {rate_cpu:.1f} GFLOP/s -> {bound_cpu:.3f} s")
    else:
        bound = bound_cpu = None
    ort_key = next((k for k, r in res["runtimes"].items() if r.get("kind") == "ort" and "best_s" in r), None)
    ort = res["runtimes"][ort_key] if ort_key else None
    add(f"   {'runtime':<32}{'oneDNN':>7}{'best s':>8}{'median':>8}{'CPU/thr':>8}{'share':>6}{'bnd/best':>9}"
        f"{'(CPU)':>7}{'/ORT':>6}{'(CPU)':>6}{'err vs TF':>10}{'vs Caffe':>9}")
    for label, r in res["runtimes"].items():
        if "best_s" not in r:
            add(f"   {label:<32} ERROR {r.get('error')}")
            continue
        dnn = {True: "on", False: "off", None: "-"}[r.get("onednn_enabled")] if r.get("kind") == "tf" else "-"
        b = f"{bound / r['best_s']:9.1%}{bound_cpu / r['best_cpu_s']:7.1%}" if bound else f"{'n/a':>9}{'':>7}"
        o = (f"{r['best_s'] / ort['best_s']:6.2f}{r['best_cpu_s'] / ort['best_cpu_s']:6.2f}" if ort
             else f"{'n/a':>6}{'':>6}")
        add(f"   {label:<32}{dnn:>7}{r['best_s']:8.3f}{r['median_s']:8.3f}{r['best_cpu_s']:8.3f}{r['cpu_share']:6.2f}"
            f"{b}{o}{r.get('rel_err_vs_tf_default', float('nan')):10.1e}{r.get('rel_err_vs_caffe', float('nan')):9.1e}")
    add("   (bnd/best = matmul bound / best time: 100% = as fast as tf.matmul's rate; /ORT = time / onnxruntime's;")
    add("    err vs TF = max|y - y_TF default| / max|y_TF default| over the whole output; vs Caffe = at the")
    add("    reference's sampled outputs, / max|Caffe|; tolerance 2e-4)")
    return L


if __name__ == "__main__":
    a = sys.argv
    worker(a[a.index("--worker") + 1], json.loads(a[a.index("--params") + 1]))
