#!/usr/bin/env python3
"""How fast is `caffe2tf serve`, and what does the service cost over calling the model directly?

Converts the bundled example (examples/mini_pspnet, 113x113 input, 10 classes) and a
PSPNet-sized variant of it (473x473 input: the same layers and weights, its fixed-size
Interp layers set to the 60x60 feature map a 473 input gives — the example's own 15x15 sizes
only fit 113), starts `caffe2tf serve` as a subprocess on 127.0.0.1 and measures:

1. throughput and latency: requests per second and p50/p99 latency of ``:predict`` (one
   113x113 instance, row format) and ``:segment`` (a 640x480 JPEG of a synthetic room, JSON
   answer) at 1, 4 and 16 concurrent clients, a fixed number of requests per level;
2. overhead at one client on the 473x473 variant: round-trip latency of the service vs the
   same work in this process — ``:predict`` vs calling the SavedModel's ``serving_default``
   on the same array, ``:segment`` vs ``segment_image`` with the SavedModel as ``logits_fn``
   on the same decoded photo (PSPNet's single-scale protocol for a 473 crop: flip, softmax);
3. TFLite vs SavedModel inference time on the same input (float32 export, both sizes).

Loopback only, bounded request counts and client timeouts; it stops by itself.

    python benchmarks/serve.py [--workers 2] [--requests 48] [--json out.json] [--keep DIR]

The service runs with --queue-size large enough that no request at 16 clients is refused;
any non-200 answer is counted and reported. Load average is printed: on a shared machine
the numbers move with it.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "mini_pspnet"
MEAN_BGR = (103.939, 116.779, 123.68)
LEVELS = (1, 4, 16)


# ----------------------------------------------------------------------------- models
def convert_models(work: Path) -> dict[str, Path]:
    from caffe2tf.pipeline import Preprocessing, convert

    pre = Preprocessing(mean=MEAN_BGR, scale=1.0, bgr=True)
    small = work / "mini_pspnet_113"
    convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", small, force=True, preprocessing=pre)
    text = (EXAMPLE / "deploy.prototxt").read_text()
    variant = re.sub(r"interp_param \{ height: 15 width: 15 \}", "interp_param { height: 60 width: 60 }", text)
    assert variant != text
    proto = work / "mini_pspnet_473.prototxt"
    proto.write_text(variant)
    big = work / "mini_pspnet_473"
    convert(proto, EXAMPLE / "weights.caffemodel", big, force=True, preprocessing=pre,
            input_shapes={"data": (1, 3, 473, 473)})
    return {"113": small, "473": big}


# ----------------------------------------------------------------------------- server
class Server:
    def __init__(self, model_dir: Path, workers: int, queue: int, name: str) -> None:
        cmd = [sys.executable, "-c", "import sys; from caffe2tf.cli import main; main(sys.argv[1:])",
               "serve", str(model_dir), "--port", "0", "--name", name, "--workers", str(workers),
               "--queue-size", str(queue), "--log-level", "warning", "--max-body-mb", "64"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.url: str | None = None
        ready = threading.Event()

        def pump() -> None:
            for line in iter(self.proc.stdout.readline, ""):
                self.lines.append(line)
                m = re.match(r"serving '.*?' from .* on (http://\S+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(300) or not self.url:
            self.stop()
            raise RuntimeError("the service did not start:\n" + "".join(self.lines[-30:]))
        import httpx

        for _ in range(300):
            try:
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("no /healthz answer")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ----------------------------------------------------------------------------- clients
async def _load(url: str, body: bytes, headers: dict, clients: int, total: int) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    counter = iter(range(total))

    async def client(c: httpx.AsyncClient) -> None:
        for _ in counter:
            t0 = time.perf_counter()
            try:
                r = await c.post(url, content=body, headers=headers)
                await r.aread()
                key: int | str = r.status_code
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        # one warm-up request per connection
        await asyncio.gather(*(c.post(url, content=body, headers=headers) for _ in range(clients)))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"clients": clients, "requests": total, "rps": total / wall,
            "p50_ms": 1000 * _pct(latencies, 50), "p99_ms": 1000 * _pct(latencies, 99),
            "statuses": {str(k): v for k, v in statuses.items()}}


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _room_jpeg(size=(480, 640), seed=3) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    from caffe2tf.segmentation.synthetic import synthetic_room

    img = synthetic_room(size, seed=seed)[0]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return data, decoded


def _predict_body(n: int, side: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    import orjson

    x = np.random.default_rng(seed).normal(0, 50, (n, side, side, 3)).astype(np.float32)
    return orjson.dumps({"instances": x}, option=orjson.OPT_SERIALIZE_NUMPY), x


def _interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, calling them in turn (so load changes hit all alike)."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


class _Poster:
    """One keep-alive connection posting the same body; remembers Server-Timing headers."""

    def __init__(self, url: str, body: bytes, headers: dict) -> None:
        import httpx

        self.client = httpx.Client(timeout=300)
        self.url, self.body, self.headers = url, body, headers
        self.server_timing: list[str] = []

    def __call__(self) -> None:
        r = self.client.post(self.url, content=self.body, headers=self.headers)
        r.raise_for_status()
        self.server_timing.append(r.headers.get("server-timing", ""))


def _server_timing_median(values: list[str], key: str) -> float:
    found = [float(m.group(1)) for v in values if (m := re.search(rf"{key};dur=([\d.]+)", v))]
    return statistics.median(found) / 1000 if found else float("nan")


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="service worker threads (default 2)")
    ap.add_argument("--requests", type=int, default=48, help="requests per level and endpoint (default 48)")
    ap.add_argument("--repeats", type=int, default=10, help="repeats of each one-client overhead timing")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--keep", type=Path, help="convert into this folder and keep it")
    args = ap.parse_args()

    import tensorflow as tf

    from caffe2tf.export.tflite import TFLiteRunner, export_tflite
    from caffe2tf.segmentation.preprocess import Preprocessing
    from caffe2tf.segmentation.protocol import segment_image
    from caffe2tf.segmentation.setup import default_protocol

    work = args.keep or Path(tempfile.mkdtemp(prefix="caffe2tf-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "workers": args.workers}
    try:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; converting ...", flush=True)
        models = convert_models(work)
        jpeg, photo = _room_jpeg()

        # 1. throughput / latency on the 113 example ------------------------------------------
        server = Server(models["113"], args.workers, queue=64, name="mini")
        try:
            body_113, _ = _predict_body(1, 113)
            rows = []
            for endpoint, url, body, headers in (
                    (":predict", f"{server.url}/v1/models/mini:predict", body_113, {}),
                    (":segment", f"{server.url}/v1/models/mini:segment?output=json", jpeg,
                     {"Content-Type": "image/jpeg"})):
                for clients in LEVELS:
                    total = max(args.requests, 2 * clients)
                    r = asyncio.run(_load(url, body, headers, clients, total))
                    r["endpoint"] = endpoint
                    rows.append(r)
                    print(f"  {endpoint:9s} {clients:2d} clients: {r['rps']:7.1f} req/s  p50 {r['p50_ms']:8.1f} ms"
                          f"  p99 {r['p99_ms']:8.1f} ms  {r['statuses']}", flush=True)
            results["throughput"] = rows
        finally:
            server.stop()

        # 2. overhead at one client on the 473 variant ----------------------------------------
        loaded = tf.saved_model.load(str(models["473"] / "saved_model"))
        sig = loaded.signatures["serving_default"]
        body_473, x473 = _predict_body(1, 473, seed=1)
        pre = Preprocessing(mean=MEAN_BGR, scale=1.0, bgr=True)
        protocol = default_protocol((473, 473))

        def direct_predict():
            return sig(data=tf.constant(x473))["output_0"].numpy()

        def direct_segment():
            return segment_image(photo, lambda b: sig(data=tf.constant(b))["output_0"].numpy(),
                                 crop_size=(473, 473), num_classes=10, preprocessing=pre, **protocol)

        server = Server(models["473"], 1, queue=4, name="mini473")
        try:
            post_p = _Poster(f"{server.url}/v1/models/mini473:predict", body_473, {})
            post_s = _Poster(f"{server.url}/v1/models/mini473:segment?output=json", jpeg,
                             {"Content-Type": "image/jpeg"})
            t = _interleaved({"direct_predict": direct_predict, "service_predict": post_p,
                              "direct_segment": direct_segment, "service_segment": post_s}, args.repeats)
        finally:
            server.stop()
        results["overhead_473"] = {}
        for kind, poster in (("predict", post_p), ("segment", post_s)):
            direct, service = t[f"direct_{kind}"], t[f"service_{kind}"]
            results["overhead_473"][kind] = {
                "direct_ms": 1000 * direct, "service_ms": 1000 * service,
                "server_model_ms": 1000 * _server_timing_median(poster.server_timing, "model"),
                "server_worker_ms": 1000 * _server_timing_median(poster.server_timing, "worker"),
                "overhead": service / direct - 1}
            r = results["overhead_473"][kind]
            r["transport_ms"] = r["service_ms"] - r["server_worker_ms"]  # HTTP, queue, event loop
            r["transport_share"] = r["transport_ms"] / r["service_ms"]
        results["overhead_473"]["predict"]["request_mb"] = len(body_473) / 1e6
        results["overhead_473"]["segment"]["protocol"] = {k: str(v) for k, v in protocol.items()}
        for k, v in results["overhead_473"].items():
            print(f"  473 {k:8s} direct {v['direct_ms']:8.1f} ms  service {v['service_ms']:8.1f} ms  "
                  f"(server: model {v['server_model_ms']:.1f} ms, worker {v['server_worker_ms']:.1f} ms, "
                  f"transport {v['transport_ms']:.1f} ms)  overhead {100 * v['overhead']:+.1f}%", flush=True)

        # 3. TFLite vs SavedModel --------------------------------------------------------------
        tfl = {}
        for size, model_dir in models.items():
            report = export_tflite(model_dir, timing_repeats=0)
            runner = TFLiteRunner(report.path.read_bytes())
            s = int(size)
            x = np.random.default_rng(2).normal(0, 50, (1, s, s, 3)).astype(np.float32)
            lsig = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
            t = _interleaved({"sm": lambda: lsig(data=tf.constant(x))["output_0"].numpy(),
                              "tfl": lambda: runner({"data": x})}, max(20, args.repeats))
            t_sm, t_tfl = t["sm"], t["tfl"]
            tfl[size] = {"saved_model_ms": 1000 * t_sm, "tflite_ms": 1000 * t_tfl,
                         "max_rel_error": report.max_rel_error, "argmax_agreement": report.argmax_agreement,
                         "tflite_kib": report.size_bytes / 1024}
            print(f"  TFLite {size}: SavedModel {1000 * t_sm:.2f} ms, TFLite {1000 * t_tfl:.2f} ms "
                  f"(max rel error {report.max_rel_error:.2e})", flush=True)
        results["tflite"] = tfl
        results["load_average_end"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def markdown(r: dict) -> str:
    out = [f"workers {r['workers']}, {r['cpus']} CPUs, load average {r['load_average_start'][0]:.2f} -> "
           f"{r.get('load_average_end', [float('nan')])[0]:.2f}", "",
           "| endpoint | clients | req/s | p50 ms | p99 ms | answers |", "|---|---:|---:|---:|---:|---|"]
    for row in r.get("throughput", []):
        out.append(f"| {row['endpoint']} | {row['clients']} | {row['rps']:.1f} | {row['p50_ms']:.1f} | "
                   f"{row['p99_ms']:.1f} | {row['statuses']} |")
    if "overhead_473" in r:
        out += ["", "| 473x473, one client | direct in-process ms | service round trip ms | server: model ms | "
                    "server: worker job ms | transport ms (round trip - job) | service vs direct |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for k, v in r["overhead_473"].items():
            out.append(f"| :{k} | {v['direct_ms']:.1f} | {v['service_ms']:.1f} | {v['server_model_ms']:.1f} | "
                       f"{v['server_worker_ms']:.1f} | {v['transport_ms']:.1f} ({100 * v['transport_share']:.1f}%) | "
                       f"{100 * v['overhead']:+.1f}% |")
    if "tflite" in r:
        out += ["", "| input | SavedModel ms | TFLite ms | max rel error | argmax agreement |", "|---|---:|---:|---:|---:|"]
        for k, v in r["tflite"].items():
            out.append(f"| {k}x{k} | {v['saved_model_ms']:.2f} | {v['tflite_ms']:.2f} | {v['max_rel_error']:.2e} | "
                       f"{100 * v['argmax_agreement']:.3f}% |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
