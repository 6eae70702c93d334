#!/usr/bin/env python
"""`segment` on a folder with PSPNet-50 (ADE20K, 473x473): images/s against the bound
passes x one forward pass, all measured in one run (issue 15, goal 2).

    .venv/bin/python benchmarks/segment_folder.py [--threads 2] [--images 8] [--rounds 1]
                                                   [--model-dir DIR] [--no-sequential]
                                                   [--json out.json]

One fresh process (``_common.run_child``, TensorFlow's intra-op pool at ``--threads``,
inter-op 1):

1. converts ``../shared/caffe_reference/pspnet50_ade20k_473`` (the caffemodel rebuilt from
   its recipe into ``benchmarks/.cache/`` once) into a temporary directory, unless
   ``--model-dir`` names a converted one; loads it as ``segment`` does
   (``load_segmenter``: SavedModel ``serving_default``, PSPNet's single-scale protocol,
   flip on);
2. writes ``--images`` photos of 683x512 made from ``examples/room.jpg`` (shifted and
   mirrored so no two are alike) as JPEGs;
3. warms the model up (one photo), then per round: one forward pass of one crop
   (batch 1, ``--pass-runs`` times), the folder through ``segment_files`` streaming (the
   pipeline ``caffe2tf segment`` runs), and sequentially (the previous loop: decode,
   segment, write, one after the other), then the one-pass runs again;
4. prints images/s, seconds per image, the one-pass time (median of all its runs), passes
   per image (windows x mirrors), the bound = passes x one pass, and the ratio
   per image / bound (goal <= 1.15); and where the time of one photo goes (per stage,
   summed over the sequential run: decode, prepare, model calls, accumulation of the
   window scores, finish = scores back to the photo's size + argmax, PNG writing).

The machine may be shared: every timing carries its CPU share (process CPU seconds /
(wall x threads)); the ratio compares runs taken in the same process, side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CASE = C.SHARED_REFERENCE / "pspnet50_ade20k_473"
PHOTO = C.REPO / "examples" / "room.jpg"
SIZE = (683, 512)  # (width, height) of the photo
SCRIPT = Path(__file__).resolve()
GOAL_RATIO = 1.15


def make_photos(folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    base = np.asarray(Image.open(PHOTO).convert("RGB").resize(SIZE, Image.Resampling.BICUBIC))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = np.roll(base, 37 * i, axis=1)
        img = img[:, ::-1] if i % 2 else img
        paths.append(folder / f"photo{i:02d}.jpg")
        Image.fromarray(np.ascontiguousarray(img)).save(paths[-1], quality=90)
    return paths


class _Clock:
    """Busy seconds per stage, summed over threads (each stage runs on one thread)."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.calls = 0
        self.lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.s[stage] = self.s.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn):  # noqa: ANN001, ANN202
        def run(*args, **kwargs):  # noqa: ANN202
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t0)
        return run


def task_segment(p: dict) -> dict:
    tf = C.configure_threads(p["threads"])
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    import numpy as np

    from caffe2tf.cli._segmentation import load_segmenter, protocol_kwargs
    from caffe2tf.segmentation.classes import make_palette
    from caffe2tf.segmentation.protocol import SegmentationProtocol
    from caffe2tf.segmentation.stream import SegmentWriter, read_image, segment_files

    res: dict = {"tf_version": tf.__version__, "threads": p["threads"], "loadavg_start": list(os.getloadavg())}
    work = Path(p["work"])
    model_dir = p.get("model_dir")
    if not model_dir:
        from caffe2tf.pipeline import convert

        t0 = time.perf_counter()
        convert(p["prototxt"], p["caffemodel"], work / "model", fold=True, force=True)
        res["convert_s"] = time.perf_counter() - t0
        model_dir = str(work / "model")
    t0 = time.perf_counter()
    seg = load_segmenter(model_dir, mean=None, scale=None, bgr=None, base_size=None, scales=None, flip=None,
                         classes=None)
    res["load_s"] = time.perf_counter() - t0
    files = make_photos(work / "photos", p["images"])
    clock = _Clock()
    model_fn = seg.logits_fn()

    def logits_fn(batch):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        out = model_fn(batch)
        clock.add("model", time.perf_counter() - t0)
        clock.calls += 1
        return out

    class Timed(SegmentationProtocol):
        prepare = clock.timed("prepare", SegmentationProtocol.prepare)
        run_model = clock.timed("run_model", SegmentationProtocol.run_model)
        finish = clock.timed("finish", SegmentationProtocol.finish)

    protocol = Timed(**protocol_kwargs(seg))
    write = clock.timed("write", SegmentWriter(work / "out", seg.class_names, make_palette(seg.num_output_classes),
                                               to_output_classes=seg.to_output_classes))
    read = clock.timed("decode", read_image)
    (work / "out").mkdir()
    prepared = protocol.prepare(read_image(files[0]))
    res["passes_per_image"] = protocol.passes_per_image(prepared)
    res["windows_per_image"] = prepared.passes
    t0 = time.perf_counter()
    protocol.finish(prepared, protocol.run_model(prepared, logits_fn))  # warm-up (one-time graph work)
    res["first_photo_s"] = time.perf_counter() - t0
    crop = np.ascontiguousarray(prepared.scales[0].x[None, :protocol.crop_size[0], :protocol.crop_size[1]])
    model_fn(crop)  # warm-up of batch 1

    passes: list[dict] = []

    def one_passes() -> None:
        for _ in range(p["pass_runs"]):
            t0, c0 = time.perf_counter(), time.process_time()
            model_fn(crop)
            wall = time.perf_counter() - t0
            passes.append({"s": wall, "cpu_share": (time.process_time() - c0) / wall / p["threads"]})

    def folder(streaming: bool) -> dict:
        clock.s.clear()
        clock.calls = 0
        t0, c0 = time.perf_counter(), time.process_time()
        lines = segment_files(files, protocol, logits_fn, write, streaming=streaming, read=read)
        wall = time.perf_counter() - t0
        assert len(lines) == len(files)
        return {"wall_s": wall, "per_image_s": wall / len(files), "images_per_s": len(files) / wall,
                "cpu_share": (time.process_time() - c0) / wall / p["threads"], "calls": clock.calls,
                "stages_s": dict(clock.s), "loadavg": list(os.getloadavg())}

    rounds = []
    for _ in range(p["rounds"]):
        one_passes()
        r = {"streaming": folder(True)}
        if p["sequential"]:
            r["sequential"] = folder(False)
        rounds.append(r)
    one_passes()
    labels_stream = sorted((work / "out").glob("*_labels.png"))
    res.update(passes=passes, rounds=rounds, images=len(files), outputs=len(labels_stream),
               loadavg_end=list(os.getloadavg()))
    return res


TASKS = {"segment": task_segment}


def report(res: dict) -> list[str]:
    m = res["machine"]
    passes = [x["s"] for x in res["passes"]]
    one = statistics.median(passes)
    n_pass = res["passes_per_image"]
    bound = n_pass * one
    out = [f"segment, PSPNet-50 ADE20K 473, {res['images']} photos {SIZE[0]}x{SIZE[1]} — {m.get('cpu', '?')}, "
           f"{m['cpus']} cores, {res['threads']} TF threads (TF {res['tf_version']})",
           f"load average: start {res['loadavg_start'][0]:.2f}, end {res['loadavg_end'][0]:.2f}",
           f"model load {res['load_s']:.1f} s" + (f", conversion {res['convert_s']:.1f} s" if "convert_s" in res else "")
           + f", first photo (warm-up) {res['first_photo_s']:.1f} s",
           f"one pass (1 crop 473x473): median {one:.2f} s, best {min(passes):.2f} s over {len(passes)} runs "
           f"(cpu share {statistics.median(x['cpu_share'] for x in res['passes']):.2f})",
           f"passes per image: {n_pass} ({res['windows_per_image']} windows x {n_pass // res['windows_per_image']})"
           f"; bound = passes x one pass = {bound:.2f} s",
           f"{'':11} {'images/s':>9} {'s/image':>8} {'/ bound':>8} {'model calls/img':>16} {'cpu share':>10}"]
    for i, r in enumerate(res["rounds"]):
        for mode, v in r.items():
            ratio = v["per_image_s"] / bound
            ok = "ok" if ratio <= GOAL_RATIO else "over"
            out.append(f"{mode:11} {v['images_per_s']:9.3f} {v['per_image_s']:8.2f} {ratio:8.3f} "
                       f"{v['calls'] / res['images']:16.2f} {v['cpu_share']:10.2f}   "
                       f"(goal <= {GOAL_RATIO}: {ok}; round {i + 1}, load {v['loadavg'][0]:.2f})")
    for i, r in enumerate(res["rounds"]):
        for mode, v in r.items():
            st = {k: s / res["images"] for k, s in v["stages_s"].items()}
            model = st.get("model", 0.0)
            accumulate = st.get("run_model", 0.0) - model
            out.append(f"per image, {mode} (busy s, summed per stage): decode {st.get('decode', 0):.3f}, "
                       f"prepare {st.get('prepare', 0):.3f}, model {model:.2f}, accumulate {accumulate:.3f}, "
                       f"finish {st.get('finish', 0):.3f}, write {st.get('write', 0):.3f}")
    return out


def main(argv: list[str]) -> int:
    if C.child_main(TASKS, argv):
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pass-runs", type=int, default=3, help="one-pass runs before and after each round")
    ap.add_argument("--model-dir", type=Path, help="an already converted pspnet50_ade20k_473 (skips conversion)")
    ap.add_argument("--no-sequential", action="store_true", help="skip the sequential loop")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv[1:])
    res: dict = {"machine": C.machine_info()}
    C.CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="segment_folder.", dir=C.CACHE))
    try:
        params = {"threads": args.threads, "images": args.images, "rounds": args.rounds,
                  "pass_runs": args.pass_runs, "sequential": not args.no_sequential, "work": str(work),
                  "model_dir": str(args.model_dir.resolve()) if args.model_dir else None}
        if not args.model_dir:
            caffemodel, _ = C.case_caffemodel(CASE)
            params.update(prototxt=str(CASE / "net.prototxt"), caffemodel=str(caffemodel))
        print("[bench] segmenting in a fresh process ...", file=sys.stderr, flush=True)
        child = C.run_child(SCRIPT, "segment", params, threads=args.threads, timeout=3600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "error" in child:
        print(child["error"], file=sys.stderr)
        return 1
    res.update(child)
    print("\n".join(report(res)))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=C._json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
