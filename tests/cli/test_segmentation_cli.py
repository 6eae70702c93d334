"""`segment`, `evaluate` and `finetune` on the converted bundled example."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from caffe2tf.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mini_pspnet"


def _run(args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def test_segment_writes_label_overlay_legend(mini_model_dir, rooms, tmp_path):
    images = sorted((rooms["val"] / "images").iterdir())[:2]
    # a photo of another size and aspect than the net's 113x113 crop
    odd = tmp_path / "odd.jpg"
    Image.open(images[0]).resize((301, 187)).save(odd)
    out = tmp_path / "seg"
    res = _run(["segment", mini_model_dir, *images, odd, "-o", out, "--classes", "indoor"])
    assert "wrote 3 result(s)" in res.output
    labels = np.asarray(Image.open(out / "odd_labels.png"))
    assert labels.shape == (187, 301) and labels.max() < 10
    overlay = Image.open(out / "odd_overlay.png")
    assert overlay.size == (301, 187) and overlay.mode == "RGB"
    legend = json.loads((out / "odd_legend.json").read_text())
    assert abs(sum(e["share"] for e in legend) - 1) < 1e-5  # shares are rounded to 6 decimals
    assert {e["name"] for e in legend} <= {"wall", "floor", "ceiling", "window", "door", "bed", "table",
                                           "seating", "storage", "other"}


def test_segment_bad_image_is_one_line_error(mini_model_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    res = CliRunner().invoke(cli, ["segment", str(mini_model_dir), str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and str(bad) in res.output and "Traceback" not in res.output


def test_evaluate_writes_json_and_report(mini_model_dir, rooms, tmp_path):
    val = rooms["val"]
    res = _run(["evaluate", mini_model_dir, "--images", val / "images", "--labels", val / "labels",
                "--classes", "indoor", "--json", tmp_path / "m.json", "--report", tmp_path / "rep"])
    assert "mIoU" in res.output or "mean IoU" in res.output
    doc = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= doc["pixel_accuracy"] <= 1
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "iou.png").is_file()


def _untrained_example(tmp_path: Path) -> Path:
    """The example net with calibrated BN but untrained convolutions (make_weights --steps 0)."""
    spec = importlib.util.spec_from_file_location("make_weights", EXAMPLE / "make_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "untrained.caffemodel"
    import sys
    argv = sys.argv
    sys.argv = ["make_weights.py", "--steps", "0", "--out", str(out)]
    try:
        mod.main()
    finally:
        sys.argv = argv
    return out


def _miou(model_dir, val, tmp_path, tag) -> float:
    _run(["evaluate", model_dir, "--images", val / "images", "--labels", val / "labels",
          "--json", tmp_path / f"{tag}.json"])
    return json.loads((tmp_path / f"{tag}.json").read_text())["mean_iou"]


def test_finetune_converted_network_learns(rooms, tmp_path):
    """A converted Caffe network fine-tuned on synthetic rooms: mIoU rises well above its start."""
    weights = _untrained_example(tmp_path)
    start_dir = tmp_path / "start"
    _run(["convert", EXAMPLE / "deploy.prototxt", weights, "-o", start_dir, "--no-saved-model", "--no-fold"])
    before = _miou(start_dir, rooms["val"], tmp_path, "before")
    tuned = tmp_path / "tuned"
    res = _run(["finetune", start_dir, "--images", rooms["train"] / "images", "--labels", rooms["train"] / "labels",
                "-o", tuned, "--steps", "200", "--batch-size", "8", "--lr", "0.01", "--checkpoint-every", "100"])
    assert "0 -> 200 steps" in res.output
    assert (tuned / "checkpoints").is_dir() and (tuned / "conversion.json").is_file()
    after = _miou(tuned, rooms["val"], tmp_path, "after")
    print(f"mIoU before {before:.3f} after {after:.3f}")
    assert after > before + 0.15 and after > 0.3, (before, after)


# --- --engine ray: a local Ray started in this process (2 CPUs, 127.0.0.1 only, no dashboard) ---

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed (pip install 'caffe2tf[ray]')")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report over the network
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


# 2 actors x 0.5 CPU leave a CPU for the decode tasks (actors on every CPU would starve them)
RAY_POOL = ["--engine", "ray", "--ray-actors", "2", "--ray-cpus-per-actor", "0.5", "--ray-batch", "2"]


def test_evaluate_on_ray_equals_local(local_ray, mini_model_dir, rooms, tmp_path):
    """Same model, same decoded arrays, same segment_image in each actor: the summed per-batch
    confusion matrices must equal the local one exactly (integer counts), hence every metric."""
    val = rooms["val"]
    common = ["evaluate", mini_model_dir, "--images", val / "images", "--labels", val / "labels", "--classes", "indoor"]
    local = _run([*common, "--json", tmp_path / "local.json"])
    ray_res = _run([*common, *RAY_POOL, "--json", tmp_path / "ray.json"])
    a = json.loads((tmp_path / "local.json").read_text())
    b = json.loads((tmp_path / "ray.json").read_text())
    assert np.asarray(a["confusion_matrix"]).sum() > 0
    np.testing.assert_array_equal(np.asarray(a["confusion_matrix"], np.int64), np.asarray(b["confusion_matrix"], np.int64))
    for key in ("pixel_accuracy", "mean_iou", "mean_class_accuracy", "fw_iou", "mean_f1", "iou", "f1", "gt_pixels"):
        assert a[key] == b[key], key
    for res, engine in ((local, "local"), (ray_res, "ray")):
        print(engine, [line for line in res.output.splitlines() if "images/s" in line])
    assert "engine ray" in ray_res.output


def test_segment_on_ray_writes_the_local_files(local_ray, mini_model_dir, rooms, tmp_path):
    images = sorted((rooms["val"] / "images").iterdir())[:2]
    odd = tmp_path / "odd.jpg"  # another size in the same Ray batch (variable-shaped tensors)
    Image.open(images[0]).resize((301, 187)).save(odd)
    images.append(odd)
    _run(["segment", mini_model_dir, *images, "-o", tmp_path / "local", "--classes", "indoor"])
    res = _run(["segment", mini_model_dir, *images, "-o", tmp_path / "ray", "--classes", "indoor", *RAY_POOL])
    assert "wrote 3 result(s)" in res.output and "engine ray" in res.output
    local_files = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local_files == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(local_files) == 12
    summary = res.output[res.output.rindex("100%"):]  # after the progress bar (same stream in CliRunner)
    where = [summary.find(f"{p.name}: ") for p in images]
    assert -1 not in where and where == sorted(where), summary  # summary lines in input order
    for image in images:
        # the same SavedModel on the same machine in another process: the argmax labels agree
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "local" / f"{image.stem}_labels.png")),
                                      np.asarray(Image.open(tmp_path / "ray" / f"{image.stem}_labels.png")))
