"""`caffe2tf segment`: label map, colour overlay and legend for each photo."""
from __future__ import annotations

from pathlib import Path

import click

from caffe2tf.cli._segmentation import engine_options, load_segmenter, protocol_kwargs, protocol_options, ray_kwargs
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


def _pipeline(seg, out: Path, alpha: float):  # noqa: ANN001, ANN202 - LoadedSegmenter
    """(protocol, logits_fn, writer) of ``caffe2tf.segmentation.stream`` for a loaded model."""
    from caffe2tf.segmentation.classes import make_palette
    from caffe2tf.segmentation.protocol import SegmentationProtocol
    from caffe2tf.segmentation.stream import SegmentWriter

    writer = SegmentWriter(out, seg.class_names, make_palette(seg.num_output_classes), alpha=alpha,
                           to_output_classes=seg.to_output_classes)
    return SegmentationProtocol(**protocol_kwargs(seg)), seg.logits_fn(), writer


def _decode(row: dict) -> dict:
    """Ray decode stage."""
    from caffe2tf.segmentation.stream import read_image

    return {"index": row["index"], "path": row["path"], "image": read_image(Path(row["path"]))}


def _segment_worker(model_dir: str, seg_opts: dict, out_dir: str, alpha: float):  # noqa: ANN202
    """Ray actor set-up: load the model once; return a batch -> summary-lines function."""
    protocol, logits_fn, writer = _pipeline(load_segmenter(model_dir, **seg_opts), Path(out_dir), alpha)

    def run(rows: list[dict]) -> list[dict]:
        return [{"index": int(r["index"]),
                 "line": writer(Path(str(r["path"])), r["image"], protocol.segment(r["image"], logits_fn).labels)}
                for r in rows]
    return run


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for <name>_labels.png, <name>_overlay.png, <name>_legend.png/.json.")
@protocol_options
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Overlay opacity.")
@engine_options
def segment(model_dir: str, images: tuple[str, ...], out_dir: str, mean, scale, bgr, base_size, scales, flip,
            classes, alpha: float, engine: str, ray_address: str | None, ray_actors: int | None,
            ray_cpus_per_actor: float, ray_gpus_per_actor: float, ray_batch: int) -> None:
    """Segment photos (JPEG/PNG, any size; folders are expanded) with a converted model.

    Uses PSPNet's evaluation protocol: resize the long side to the base size, pad
    with the mean, slide a crop-sized window with stride 2/3 of the crop, sum the
    class scores, optionally add the mirrored image's and several scales', and
    bring the result back to the photo's resolution. With a 473x473 ADE20K model
    the defaults reproduce PSPNet's published single-scale setting (base size 512,
    flip on); --scales 0.5,0.75,1,1.25,1.5,1.75 gives its multi-scale setting.

    With --engine ray a Ray Data actor pool reads and segments the photos (the
    model loaded once per actor; OUT must be reachable from every Ray node) and
    writes the same files. Locally the next photo is decoded, and the previous one
    written, while the model runs.
    """
    import time

    from tqdm import tqdm

    files = _expand(images)
    seg_opts = dict(mean=mean, scale=scale, bgr=bgr, base_size=base_size, scales=scales, flip=flip, classes=classes)
    pool = ray_kwargs(ray_actors, ray_cpus_per_actor, ray_gpus_per_actor, ray_batch)
    seg = load_segmenter(model_dir, **seg_opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(files), desc="segment", unit="img", disable=len(files) < 2)
    began = time.perf_counter()
    if engine == "ray":
        from functools import partial

        from caffe2tf.segmentation.ray_engine import ensure_ray, run_pipeline

        ensure_ray(ray_address)
        rows = run_pipeline([{"index": i, "path": str(p)} for i, p in enumerate(files)], _decode,
                            partial(_segment_worker, str(model_dir), seg_opts, str(out.resolve()), alpha),
                            on_row=lambda _: bar.update(1), **pool)
        lines = [r["line"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    else:
        from caffe2tf.segmentation.stream import segment_files

        protocol, logits_fn, writer = _pipeline(seg, out, alpha)
        lines = segment_files(files, protocol, logits_fn, writer, on_done=lambda *_: bar.update(1))
    seconds = time.perf_counter() - began
    bar.close()
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {len(files)} result(s) to {out} in {seconds:.2f}s "
               f"({len(files) / max(seconds, 1e-9):.2f} images/s, engine {engine})")
