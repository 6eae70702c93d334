"""`caffe2tf export`: TFLite from a converted model's SavedModel, checked against it."""
from __future__ import annotations

import os
import click


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--tflite", is_flag=True, help="Write a TFLite model (the only export format so far).")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8"]), default="none",
              show_default=True, help="none: float32, checked to match the SavedModel; float16: half-precision "
                                      "weights; dynamic: int8 weights; int8: int8 weights and activations.")
@click.option("--calibration-images", type=click.Path(file_okay=False),
              help="Folder of photos to calibrate --quantize int8 (default: synthetic rooms, with a warning).")
@click.option("--calibration-count", default=64, show_default=True, type=click.IntRange(1, 100000),
              help="Use at most this many calibration images.")
@click.option("--select-tf-ops", is_flag=True,
              help="Allow TensorFlow ops that are not TFLite builtins (needs the Flex delegate at run time).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Where to write (default: MODEL_DIR/model.tflite, beside the SavedModel).")
def export(model_dir: str, tflite: bool, quantize: str, calibration_images: str | None, calibration_count: int,
           select_tf_ops: bool, output: str | None) -> None:
    """Export a converted model to TFLite and check it against the SavedModel.

    Runs the TFLite interpreter and the SavedModel on the same input and reports the
    max relative error (and arg-max agreement for per-pixel class scores), here and
    in MODEL_DIR/conversion.json. A float32 export must match within 2e-4 relative
    (exit 1 otherwise); quantized exports report their error and size only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter
    if not tflite:
        raise click.UsageError("say which format to export: --tflite")
    if calibration_images and quantize != "int8":
        raise click.UsageError("--calibration-images is only used with --quantize int8")
    from caffe2tf.export.tflite import export_tflite

    report = export_tflite(model_dir, quantize=quantize, calibration_images=calibration_images,
                           calibration_count=calibration_count, select_tf_ops=select_tf_ops, output=output)
    for line in report.summary_lines():
        click.echo(line)
    click.echo(f"  recorded in {model_dir}/conversion.json (exports.tflite)")
    if not report.ok:
        raise SystemExit(1)

