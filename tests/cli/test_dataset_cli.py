"""`caffe2tf dataset prepare` -> `finetune --manifest` -> `evaluate --manifest` on a generated ADE20K-format set."""
from __future__ import annotations

import json

from click.testing import CliRunner

from caffe2tf.cli import cli

from tests.segmentation.ade20k_fixture import BROKEN, write_ade20k_set


def _run(args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def test_prepare_then_finetune_and_evaluate_on_manifest(mini_model_dir, tmp_path):
    ade = write_ade20k_set(tmp_path / "ADE", n=8, size=120)
    out = tmp_path / "prepared"
    res = _run(["dataset", "prepare", ade, "-o", out, "--scheme", "indoor", "--val-fraction", "0.25", "--seed", "1"])
    assert "kept 8 images (train 6, val 2), dropped 5; 10 classes" in res.output
    assert all(stem in res.output for stem in BROKEN)
    manifest = out / "manifest.jsonl"
    assert (out / "report.md").is_file() and (out / "class_frequencies.png").is_file()

    tuned = tmp_path / "tuned"
    res = _run(["finetune", mini_model_dir, "--manifest", manifest, "-o", tuned, "--steps", "2", "--batch-size", "2",
                "--lr", "0.001", "--checkpoint-every", "1"])
    assert "0 -> 2 steps" in res.output
    assert "global batch 2 (2 per replica); learning rate poly: lr = 0.001 * (1 - step / 2) ** 0.9" in res.output
    record = json.loads((tuned / "conversion.json").read_text())
    assert record["finetuned"]["manifest"].endswith("(train)")
    # MirroredStrategy (one replica on a CPU-only host): the model is loaded inside its scope
    res = _run(["finetune", mini_model_dir, "--manifest", manifest, "-o", tmp_path / "mirrored", "--steps", "1",
                "--batch-size", "2", "--strategy", "mirrored"])
    assert "strategy MirroredStrategy" in res.output and (tmp_path / "mirrored" / "saved_model").is_dir()

    res = _run(["evaluate", tuned, "--manifest", manifest, "--classes", "indoor", "--json", tmp_path / "m.json"])
    doc = json.loads((tmp_path / "m.json").read_text())
    assert "split val (2 images)" in doc["notes"]["images"] and 0 <= doc["pixel_accuracy"] <= 1


def test_prepare_bad_input_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "prepare", str(tmp_path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "annotations" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["dataset", "prepare", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "SOURCE" in res.output


def test_multi_worker_needs_tf_config(mini_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    res = CliRunner().invoke(cli, ["finetune", str(mini_model_dir), "--images", str(tmp_path), "--labels",
                                   str(tmp_path), "-o", str(tmp_path / "o"), "--strategy", "multi-worker"])
    assert res.exit_code == 2 and "TF_CONFIG" in res.output
