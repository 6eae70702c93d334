"""`caffe2tf evaluate`: pixel accuracy, mIoU, F1 ... over a labelled image folder."""
from __future__ import annotations


import click
import numpy as np

from caffe2tf.cli._segmentation import (engine_options, load_segmenter, make_gt_transform, protocol_kwargs,
                                        protocol_options, ray_kwargs)


def _decode_pair(row: dict) -> dict:
    """Ray decode stage: the image and its stored labels (checked as locally)."""
    from pathlib import Path

    from caffe2tf.segmentation.evaluate import read_pair

    image, gt = read_pair(Path(row["image"]), Path(row["label"]))
    return {"image": image, "gt": gt}


def _eval_worker(model_dir: str, seg_opts: dict, ignore_index: int, label_offset: int, to_output: bool):  # noqa: ANN202
    """Ray actor set-up: load the model once; return a batch -> confusion-matrix function."""
    from caffe2tf.segmentation.metrics import ConfusionMatrix
    from caffe2tf.segmentation.protocol import segment_image

    seg = load_segmenter(model_dir, **seg_opts)
    gt_transform = make_gt_transform(seg, ignore_index=ignore_index, label_offset=label_offset, to_output=to_output)
    logits_fn = seg.logits_fn()
    kwargs = protocol_kwargs(seg)

    def run(rows: list[dict]) -> list[dict]:
        cm = ConfusionMatrix(seg.num_output_classes, ignore_index)
        for row in rows:
            labels = segment_image(np.asarray(row["image"]), logits_fn, **kwargs).labels
            cm.update(seg.to_output_classes(labels), gt_transform(np.asarray(row["gt"])))
        return [{"n": len(rows), "confusion": cm.matrix.ravel()}]
    return run


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--images", type=click.Path(file_okay=False), help="Folder of photos.")
@click.option("--labels", type=click.Path(file_okay=False),
              help="Folder of label PNGs, paired with the photos by name (x.jpg <-> x.png).")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True),
              help="Instead of --images/--labels: a manifest.jsonl written by `caffe2tf dataset prepare` (its "
                   "labels are already in the manifest's class scheme).")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True,
              help="Which split of --manifest to evaluate.")
@click.option("--ignore-index", type=int, default=255, show_default=True, help="Ground-truth label to ignore.")
@click.option("--label-offset", type=int, default=0, show_default=True,
              help="Subtract from stored labels; labels that become negative are ignored. ADE20K's "
                   "annotations are 1-based with 0 = unlabelled: use 1.")
@protocol_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the metrics as JSON here.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write a Markdown report with an IoU bar chart and a confusion-matrix heat map here.")
@click.option("--limit", type=int, help="Evaluate only the first N pairs.")
@engine_options
def evaluate(model_dir: str, images: str | None, labels: str | None, manifest: str | None, split: str, ignore_index: int, label_offset: int, mean, scale, bgr,
             base_size, scales, flip, classes, json_path: str | None, report_dir: str | None,
             limit: int | None, engine: str, ray_address: str | None, ray_actors: int | None,
             ray_cpus_per_actor: float, ray_gpus_per_actor: float, ray_batch: int) -> None:
    """Evaluate a converted segmentation model with the PSPNet paper's metrics.

    One confusion matrix is accumulated over the whole folder (constant memory);
    from it: pixel accuracy, mean class accuracy, per-class and mean IoU,
    frequency-weighted IoU, per-class precision, recall and F1 and their means.
    With --classes indoor both prediction and ground truth (ADE20K indices) are
    grouped into the compact indoor classes first.

    With --engine ray the images are read and segmented by a Ray Data actor pool
    and the per-batch confusion matrices are summed: the same integer counts, so
    the same metrics, as the local engine.
    """
    import time

    from tqdm import tqdm

    from caffe2tf.errors import Caffe2TFError
    from caffe2tf.segmentation.evaluate import evaluate_pairs, list_pairs
    from caffe2tf.segmentation.report import format_table, write_json, write_markdown_report

    gt_is_output = False  # the stored labels already use the reported classes
    if manifest is not None:
        if images or labels:
            raise click.UsageError("give --manifest or --images/--labels, not both")
        from caffe2tf.segmentation.dataset import read_dataset_info, read_manifest

        pairs = read_manifest(manifest, split)
        manifest_classes = len(read_dataset_info(manifest).get("class_names") or [])
    elif images and labels:
        pairs = list_pairs(images, labels)
    else:
        raise click.UsageError("give --images and --labels, or --manifest")
    pairs = pairs[:limit]
    seg_opts = dict(mean=mean, scale=scale, bgr=bgr, base_size=base_size, scales=scales, flip=flip, classes=classes)
    pool = ray_kwargs(ray_actors, ray_cpus_per_actor, ray_gpus_per_actor, ray_batch)
    seg = load_segmenter(model_dir, **seg_opts)
    if manifest is not None and manifest_classes:
        if manifest_classes == seg.num_output_classes:
            gt_is_output = True
        elif manifest_classes != seg.setup.num_classes:
            raise Caffe2TFError(f"the manifest's labels have {manifest_classes} classes; the model reports "
                                f"{seg.num_output_classes} (--classes)", file=manifest)

    to_output = classes == "indoor" and not gt_is_output
    n = len(pairs)
    bar = tqdm(total=n, desc="evaluate", unit="img", disable=n < 2)
    began = time.perf_counter()
    if engine == "ray":
        from functools import partial

        from caffe2tf.segmentation.metrics import ConfusionMatrix
        from caffe2tf.segmentation.ray_engine import ensure_ray, run_pipeline, sum_confusion

        ensure_ray(ray_address)
        rows = run_pipeline([{"image": str(i), "label": str(g)} for i, g in pairs], _decode_pair,
                            partial(_eval_worker, str(model_dir), seg_opts, ignore_index, label_offset, to_output),
                            on_row=lambda r: bar.update(int(r["n"])), **pool)
        confusion = ConfusionMatrix(seg.num_output_classes, ignore_index)
        confusion.matrix += sum_confusion(rows, seg.num_output_classes)
    else:
        kwargs = protocol_kwargs(seg)
        kwargs.pop("num_classes")
        gt_transform = make_gt_transform(seg, ignore_index=ignore_index, label_offset=label_offset,
                                         to_output=to_output)
        confusion = evaluate_pairs(pairs, seg.logits_fn(), seg.setup.num_classes,
                                   ignore_index=ignore_index, gt_transform=gt_transform,
                                   pred_transform=seg.to_output_classes, metric_classes=seg.num_output_classes,
                                   on_result=lambda *_: bar.update(1), **kwargs)
    seconds = time.perf_counter() - began
    bar.close()
    metrics = confusion.compute()
    click.echo(format_table(metrics, seg.class_names))
    click.echo(f"{n} images in {seconds:.2f}s ({n / max(seconds, 1e-9):.2f} images/s, engine {engine})")
    source = {"images": f"{images} ({n} images)", "labels": str(labels)} if manifest is None else \
        {"images": f"{manifest} split {split} ({n} images)", "labels": "manifest"}
    notes = {"model": str(model_dir), **source,
             "classes": classes or "model's own", "protocol": str(seg.setup.describe()),
             "engine": engine, "seconds": round(seconds, 3),
             "images_per_s": round(n / seconds, 3) if seconds > 0 else None}
    if json_path:
        write_json(metrics, json_path, seg.class_names, confusion=confusion, extra={"notes": notes})
        click.echo(f"metrics: {json_path}")
    if report_dir:
        path = write_markdown_report(confusion, report_dir, seg.class_names, notes=notes)
        click.echo(f"report: {path}")
