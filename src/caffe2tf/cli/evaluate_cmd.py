"""`caffe2tf evaluate`: pixel accuracy, mIoU, F1 ... over a labelled image folder."""
from __future__ import annotations


import click
import numpy as np

from caffe2tf.cli._segmentation import load_segmenter, protocol_kwargs, protocol_options


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
def evaluate(model_dir: str, images: str | None, labels: str | None, manifest: str | None, split: str, ignore_index: int, label_offset: int, mean, scale, bgr,
             base_size, scales, flip, classes, json_path: str | None, report_dir: str | None,
             limit: int | None) -> None:
    """Evaluate a converted segmentation model with the PSPNet paper's metrics.

    One confusion matrix is accumulated over the whole folder (constant memory);
    from it: pixel accuracy, mean class accuracy, per-class and mean IoU,
    frequency-weighted IoU, per-class precision, recall and F1 and their means.
    With --classes indoor both prediction and ground truth (ADE20K indices) are
    grouped into the compact indoor classes first.
    """
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
    seg = load_segmenter(model_dir, mean=mean, scale=scale, bgr=bgr, base_size=base_size, scales=scales,
                         flip=flip, classes=classes)
    if manifest is not None and manifest_classes:
        if manifest_classes == seg.num_output_classes:
            gt_is_output = True
        elif manifest_classes != seg.setup.num_classes:
            raise Caffe2TFError(f"the manifest's labels have {manifest_classes} classes; the model reports "
                                f"{seg.num_output_classes} (--classes)", file=manifest)

    def gt_transform(gt: np.ndarray) -> np.ndarray:
        g = gt.astype(np.int64)
        if label_offset:
            keep = (g != ignore_index) & (g >= label_offset)
            g = np.where(keep, g - label_offset, ignore_index)
        return seg.to_output_classes(g) if classes == "indoor" and not gt_is_output else g

    n = len(pairs)
    bar = tqdm(total=n, desc="evaluate", unit="img", disable=n < 2)
    kwargs = protocol_kwargs(seg)
    kwargs.pop("num_classes")
    confusion = evaluate_pairs(pairs, seg.logits_fn(), seg.setup.num_classes,
                               ignore_index=ignore_index, gt_transform=gt_transform,
                               pred_transform=seg.to_output_classes, metric_classes=seg.num_output_classes,
                               on_result=lambda *_: bar.update(1), **kwargs)
    bar.close()
    metrics = confusion.compute()
    click.echo(format_table(metrics, seg.class_names))
    source = {"images": f"{images} ({n} images)", "labels": str(labels)} if manifest is None else \
        {"images": f"{manifest} split {split} ({n} images)", "labels": "manifest"}
    notes = {"model": str(model_dir), **source,
             "classes": classes or "model's own", "protocol": str(seg.setup.describe())}
    if json_path:
        write_json(metrics, json_path, seg.class_names, confusion=confusion, extra={"notes": notes})
        click.echo(f"metrics: {json_path}")
    if report_dir:
        path = write_markdown_report(confusion, report_dir, seg.class_names, notes=notes)
        click.echo(f"report: {path}")
