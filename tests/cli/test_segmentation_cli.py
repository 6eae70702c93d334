"""`segment`, `evaluate` and `finetune` on the converted bundled example."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
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
