"""`caffe2tf segment`: label map, colour overlay and legend for each photo."""
from __future__ import annotations

import json
from pathlib import Path

import click

from caffe2tf.cli._segmentation import load_segmenter, protocol_kwargs, protocol_options
from caffe2tf.errors import Caffe2TFError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _expand(paths: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise Caffe2TFError("no such image or folder", file=str(p))
    if not out:
        raise Caffe2TFError("no images found in " + ", ".join(paths))
    return out


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for <name>_labels.png, <name>_overlay.png, <name>_legend.png/.json.")
@protocol_options
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Overlay opacity.")
def segment(model_dir: str, images: tuple[str, ...], out_dir: str, mean, scale, bgr, base_size, scales, flip,
            classes, alpha: float) -> None:
    """Segment photos (JPEG/PNG, any size; folders are expanded) with a converted model.

    Uses PSPNet's evaluation protocol: resize the long side to the base size, pad
    with the mean, slide a crop-sized window with stride 2/3 of the crop, sum the
    class scores, optionally add the mirrored image's and several scales', and
    bring the result back to the photo's resolution. With a 473x473 ADE20K model
    the defaults reproduce PSPNet's published single-scale setting (base size 512,
    flip on); --scales 0.5,0.75,1,1.25,1.5,1.75 gives its multi-scale setting.
    """
    from tqdm import tqdm

    from caffe2tf.segmentation import visualize
    from caffe2tf.segmentation.classes import make_palette
    from caffe2tf.segmentation.evaluate import read_rgb
    from caffe2tf.segmentation.protocol import segment_image

    files = _expand(images)
    seg = load_segmenter(model_dir, mean=mean, scale=scale, bgr=bgr, base_size=base_size, scales=scales,
                         flip=flip, classes=classes)
    palette = make_palette(seg.num_output_classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    logits_fn = seg.logits_fn()
    kwargs = protocol_kwargs(seg)
    for path in tqdm(files, desc="segment", unit="img", disable=len(files) < 2):
        try:
            image = read_rgb(path)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad input file
            raise Caffe2TFError(f"not a readable image ({type(exc).__name__})", file=str(path)) from None
        labels = seg.to_output_classes(segment_image(image, logits_fn, **kwargs).labels)
        stem = out / path.stem
        visualize.write_label_png(labels, f"{stem}_labels.png")
        visualize.write_overlay_png(image, labels, f"{stem}_overlay.png", palette, alpha=alpha, ignore_index=None)
        entries = visualize.legend(labels, seg.class_names, palette, ignore_index=None)
        visualize.write_legend_png(entries, f"{stem}_legend.png")
        Path(f"{stem}_legend.json").write_text(json.dumps(
            [{"index": e.index, "name": e.name, "color": "#%02x%02x%02x" % e.colour, "share": round(e.share, 6)}
             for e in entries], indent=1))
        top = ", ".join(f"{e.name} {100 * e.share:.1f}%" for e in entries[:4])
        click.echo(f"{path.name}: {top}")
    click.echo(f"wrote {len(files)} result(s) to {out}")
