#!/usr/bin/env python3
"""How fast, and in how much memory, does caffe2tf read a large caffemodel?

Builds a VGG-16-shaped caffemodel (conv1_1 ... conv5_3, fc6 25088x4096, fc7, fc8:
138 M random float32 weights, ~553 MB) with caffe2tf's own writer in a temporary
directory, then measures, each in a fresh subprocess so that peak RSS is clean:

  ours   caffe2tf.frontend.weights.read_caffemodel (weights-only wire-format view)
  naive  the generated stubs: NetParameter().ParseFromString(file bytes), then
         np.array(blob.data, dtype=np.float32) for every blob

Throughput is file size / wall time of the read alone (imports excluded); peak
RSS is the process's high-water mark (ru_maxrss) minus its RSS after imports.
Both read from a warm page cache (the file is read once before measuring), so the
numbers are the reader's cost, not the disk's.

    python benchmarks/read_caffemodel.py [--scale 1.0] [--repeat 3] [--naive-scale 1.0] [--keep DIR]

Targets (from the issue): ours >= 500 MB/s and peak RSS <= 1.5 x file size.
Exit status 1 when ours misses a target.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

TARGET_MB_S = 500.0
TARGET_RSS_RATIO = 1.5

# (name, type, weight shape); every layer also has a bias of shape (out,).
VGG16 = [
    ("conv1_1", (64, 3, 3, 3)), ("conv1_2", (64, 64, 3, 3)),
    ("conv2_1", (128, 64, 3, 3)), ("conv2_2", (128, 128, 3, 3)),
    ("conv3_1", (256, 128, 3, 3)), ("conv3_2", (256, 256, 3, 3)), ("conv3_3", (256, 256, 3, 3)),
    ("conv4_1", (512, 256, 3, 3)), ("conv4_2", (512, 512, 3, 3)), ("conv4_3", (512, 512, 3, 3)),
    ("conv5_1", (512, 512, 3, 3)), ("conv5_2", (512, 512, 3, 3)), ("conv5_3", (512, 512, 3, 3)),
    ("fc6", (4096, 25088)), ("fc7", (4096, 4096)), ("fc8", (1000, 4096)),
]

# Run in a fresh interpreter: import, note the RSS, read, report JSON on stdout.
CHILD = r"""
import json, resource, sys, time
import numpy as np
import psutil
from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.weights import read_caffemodel

mode, path = sys.argv[1], sys.argv[2]
baseline = psutil.Process().memory_info().rss
start = time.perf_counter()
if mode == "ours":
    arrays = [b for layer in read_caffemodel(path) for b in layer.blobs]
else:
    with open(path, "rb") as f:
        data = f.read()
    net = caffe_pb2.NetParameter()
    net.ParseFromString(data)
    arrays = [np.array(b.data, dtype=np.float32) for layer in net.layer for b in layer.blobs]
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
checksum = sum(float(a.reshape(-1)[:16].sum()) for a in arrays)
print(json.dumps({"seconds": seconds, "peak_extra": peak - baseline, "baseline": baseline,
                  "values": int(sum(a.size for a in arrays)), "checksum": checksum}))
"""


def layers(scale: float, seed: int = 0) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """VGG-16's layers with random weights, one layer in memory at a time.

    ``scale`` < 1 shrinks every weight's leading (output) dimension, for a smaller file."""
    rng = np.random.default_rng(seed)
    for name, shape in VGG16:
        out = max(1, round(shape[0] * scale))
        w = rng.standard_normal((out, *shape[1:]), dtype=np.float32)
        w *= np.float32(0.01)
        yield name, "InnerProduct" if name.startswith("fc") else "Convolution", [w, np.zeros(out, np.float32)]


def build(path: Path, scale: float) -> int:
    from caffe2tf.frontend.caffemodel_writer import write_caffemodel

    return write_caffemodel(path, layers(scale), name="VGG_ILSVRC_16_layers")


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(64 << 20):
            pass


def measure(mode: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                            env=env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{mode} reader failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="model size factor (1.0 = VGG-16, ~553 MB)")
    parser.add_argument("--naive-scale", type=float, default=None,
                        help="measure the naive reader on a smaller model (default: the same model)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of our reader; the best is reported")
    parser.add_argument("--keep", type=Path, default=None, help="build the model(s) in this directory and keep them")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="caffe2tf-bench-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        model = where / "vgg16.caffemodel"
        t0 = time.perf_counter()
        size = build(model, args.scale)
        print(f"built {model.name}: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s "
              f"(caffe2tf.frontend.caffemodel_writer)")
        naive_model, naive_size = model, size
        if args.naive_scale is not None and args.naive_scale != args.scale:
            naive_model = where / "vgg16-naive.caffemodel"
            naive_size = build(naive_model, args.naive_scale)
            print(f"built {naive_model.name} for the naive reader: {naive_size / 1e6:.1f} MB")

        rows = []
        warm(model)
        ours = min((measure("ours", model) for _ in range(max(1, args.repeat))), key=lambda r: r["seconds"])
        rows.append(("ours: read_caffemodel", size, ours))
        warm(naive_model)
        naive = measure("naive", naive_model)
        rows.append(("naive: stubs + np.array", naive_size, naive))
        if naive_model == model and (ours["checksum"], ours["values"]) != (naive["checksum"], naive["values"]):
            print("WARNING: the two readers disagree on the weights")

    print()
    print(f"{'reader':<26}{'file MB':>10}{'seconds':>10}{'MB/s':>10}{'peak RSS MB':>14}{'RSS/file':>10}")
    stats = {}
    for label, nbytes, r in rows:
        mb_s = nbytes / 1e6 / r["seconds"]
        ratio = r["peak_extra"] / nbytes
        stats[label.split(":")[0]] = (mb_s, ratio)
        print(f"{label:<26}{nbytes / 1e6:>10.1f}{r['seconds']:>10.3f}{mb_s:>10.0f}"
              f"{r['peak_extra'] / 1e6:>14.1f}{ratio:>10.2f}")
    (ours_speed, ours_ratio), (naive_speed, naive_ratio) = stats["ours"], stats["naive"]
    print()
    print(f"speed: ours / naive = {ours_speed / naive_speed:.1f}x;  "
          f"peak RSS / file size: ours {ours_ratio:.2f}, naive {naive_ratio:.2f}")
    if naive_size != size:
        print(f"(the naive reader was measured on a {naive_size / 1e6:.0f} MB model, not the {size / 1e6:.0f} MB one)")
    ok_speed, ok_rss = ours_speed >= TARGET_MB_S, ours_ratio <= TARGET_RSS_RATIO
    print(f"targets: >= {TARGET_MB_S:.0f} MB/s: {'met' if ok_speed else 'MISSED'} ({ours_speed:.0f});  "
          f"peak RSS <= {TARGET_RSS_RATIO} x file: {'met' if ok_rss else 'MISSED'} ({ours_ratio:.2f})")
    return 0 if ok_speed and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main())
