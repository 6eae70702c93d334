"""`caffe2tf convert`: prototxt + caffemodel -> OUT/{model.keras, saved_model/, conversion.json}."""
from __future__ import annotations

import json

import click

from caffe2tf.cli.options import ignore_unknown_option, input_shape_option, parse_input_shapes, parse_number_list


@click.command()
@click.argument("prototxt", type=click.Path(dir_okay=False))
@click.argument("caffemodel", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Directory to write (must not exist unless --force). Default: beside PROTOTXT, "
                   "named after the net with a _tf suffix (e.g. models/ResNet-50_tf).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--fold/--no-fold", default=True, show_default=True,
              help="Fold BatchNorm/BN/Scale/Bias into the preceding conv or inner product.")
@click.option("--input-layout", type=click.Choice(["nhwc", "nchw"]), default="nhwc", show_default=True,
              help="Layout the exported model accepts: nchw transposes once at the boundary.")
@input_shape_option
@ignore_unknown_option
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Python file registering translators for custom layer types (see docs/adding_a_layer.md).")
@click.option("--mean", help="Per-channel mean to record for preprocessing, net channel order, e.g. 103.939,116.779,123.68.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Input scale to record for preprocessing.")
@click.option("--bgr/--rgb", default=True, show_default=True, help="Channel order the net expects.")
@click.option("--classes", help="Class names to record for `segment`/`serve`: 'ade20k', 'indoor' or a file "
                                "with one name per line.")
@click.option("--verify", is_flag=True,
              help="After converting, diff every layer against the built-in Caffe reference on a random input; "
                   "exit 1 (report written to OUT/verification.html) if any layer is out of tolerance.")
@click.option("--no-saved-model", is_flag=True, help="Write only model.keras (faster).")
def convert(prototxt: str, caffemodel: str, out_dir: str | None, force: bool, fold: bool, input_layout: str,
            input_shapes: tuple[str, ...], ignore_unknown_fields: bool, plugins: tuple[str, ...],
            mean: str | None, scale: float, bgr: bool, classes: str | None, verify: bool,
            no_saved_model: bool) -> None:
    """Convert a Caffe model to Keras and TensorFlow SavedModel.

    Writes OUT/model.keras, OUT/saved_model/ (serving_default signature) and
    OUT/conversion.json (inputs, outputs, and the Keras tensor holding every Caffe
    layer output). OUT appears complete or not at all.
    """
    from tqdm import tqdm

    from caffe2tf.pipeline import Preprocessing, convert as run_convert
    from caffe2tf.errors import Caffe2TFError

    class_names = None
    if classes is not None:
        from caffe2tf.segmentation.classes import load_class_names

        try:
            class_names = load_class_names(classes)
        except OSError as exc:
            raise Caffe2TFError(f"cannot read class names: {exc.strerror or exc}", file=classes) from None

    stages = ["init", "read", "fold", "build", "save"] + (["verify"] if verify else [])
    bar = tqdm(total=len(stages), desc="convert", unit="stage", leave=False, disable=None,
               bar_format="{desc}{n_fmt}/{total_fmt} |{bar:20}| {elapsed}")

    def progress(name: str) -> None:
        if name != stages[0]:
            bar.update(1)
        bar.set_description(f"convert: {name}")

    verifier = None
    if verify:
        def verifier(original, graph, tmp_dir):
            from caffe2tf.verification.diff import verify_conversion
            from caffe2tf.verification.report_html import write_html

            report = verify_conversion(graph, reference_graph=original)
            (tmp_dir / "verification.json").write_text(json.dumps(report.to_dict(), indent=1))
            write_html(report, tmp_dir / "verification.html")
            return report

    try:
        result = run_convert(prototxt, caffemodel, out_dir, fold=fold, input_layout=input_layout,
                             input_shapes=parse_input_shapes(input_shapes), force=force,
                             allow_unknown_fields=ignore_unknown_fields, plugins=plugins,
                             preprocessing=Preprocessing(mean=parse_number_list(mean, "--mean"), scale=scale, bgr=bgr),
                             class_names=class_names,
                             save_saved_model=not no_saved_model, progress=progress, verify=verifier)
    finally:
        bar.close()
    rec = result.record
    t = result.timings
    click.echo(f"converted {rec.name}: {len(rec.layers)} Caffe layers"
               + (f", {sum(len(v) for v in rec.folds.values())} folded" if rec.folds else "")
               + f" -> {result.out_dir}")
    click.echo("  " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))
    for io, tensors in (("inputs", rec.inputs), ("outputs", rec.outputs)):
        click.echo(f"  {io}: " + ", ".join(f"{x.blob} {'x'.join(map(str, x.keras_shape))}" for x in tensors))
    report = result.verification
    if report is not None:
        from caffe2tf.verification.report_terminal import verdict_line

        click.echo(f"  verify (built-in Caffe reference, random input): {verdict_line(report)}")
        click.echo(f"  report: {result.out_dir / 'verification.html'}")
        if not report.ok:
            raise SystemExit(1)
