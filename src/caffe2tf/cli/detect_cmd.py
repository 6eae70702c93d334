"""`caffe2tf detect`: boxes drawn on each photo (PNG) and the detections as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import click

from caffe2tf.cli.segment_cmd import _expand
from caffe2tf.errors import Caffe2TFError


def load_detector(model_dir: str, *, classes: str | None, threshold: float):  # noqa: ANN201
    """(ServedModel, DetectionSetup) for `detect`; Caffe2TFError if the model does not detect."""
    from caffe2tf.detection.setup import detection_setup
    from caffe2tf.model_dir.served import ServedModel

    names = None
    if classes is not None:
        from caffe2tf.segmentation.classes import load_class_names

        try:
            names = load_class_names(classes)
        except OSError as exc:
            raise Caffe2TFError(f"cannot read class names: {exc.strerror or exc}", file=classes) from None
    model = ServedModel.load(model_dir)
    setup, why = detection_setup(model, class_names=names, threshold=threshold)
    if setup is None:
        raise Caffe2TFError(f"this model does not detect objects: {why}", file=model_dir)
    model.warm_up()  # the first call traces the graph: keep that out of the first photo's model_ms
    return model, setup


def result_json(path: Path, result, setup) -> dict:  # noqa: ANN001 - DetectionResult, DetectionSetup
    h, w = result.image_size
    return {"image": str(path), "width": int(w), "height": int(h), "threshold": setup.threshold,
            "detections": [d.to_json() for d in result.detections],
            "model": {"layer": setup.layer, "input_size": list(setup.input_size),
                      "rows": int(len(result.rows)), "model_ms": round(1000 * result.model_s, 2)}}


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for <name>_boxes.png and <name>_detections.json.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Keep detections scoring at least this.")
@click.option("--classes", metavar="FILE", help="Class names, one per line (overrides those recorded by `convert --classes`); "
                                "a list without the background class gets it inserted.")
def detect(model_dir: str, images: tuple[str, ...], out_dir: str, threshold: float, classes: str | None) -> None:
    """Detect objects in photos (JPEG/PNG, any size; folders are expanded) with a converted
    SSD-style model (one whose output is a DetectionOutput layer's).

    Each photo is resized to the network's input size and preprocessed as recorded at
    conversion (--mean, --scale, --bgr/--rgb of `convert`). Writes <name>_boxes.png (the
    photo with boxes, labels and scores) and <name>_detections.json (boxes in the photo's
    pixels, clipped to it, plus the network's unclipped normalised boxes).
    """
    from tqdm import tqdm

    from caffe2tf.detection.draw import draw_detections, write_png
    from caffe2tf.segmentation.evaluate import read_rgb

    files = _expand(images)
    _, setup = load_detector(model_dir, classes=classes, threshold=threshold)
    photos = []
    for path in files:  # every photo is checked before anything is written
        try:
            photos.append((path, read_rgb(path)))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad input file
            raise Caffe2TFError(f"not a readable image ({type(exc).__name__})", file=str(path)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path, image in tqdm(photos, desc="detect", unit="img", disable=len(photos) < 2):
        result = setup.detect(image)
        stem = out / path.stem
        write_png(draw_detections(image, result.detections), f"{stem}_boxes.png")
        Path(f"{stem}_detections.json").write_text(json.dumps(result_json(path, result, setup), indent=1))
        best = ", ".join(f"{d.name} {d.score:.3f} at ({d.box[0]:.0f}, {d.box[1]:.0f})-({d.box[2]:.0f}, "
                         f"{d.box[3]:.0f})" for d in result.detections[:3])
        click.echo(f"{path.name}: {len(result.detections)} detection(s)" + (f": {best}" if best else ""))
    click.echo(f"wrote {len(photos)} result(s) to {out}")
