"""`caffe2tf dataset prepare`: training data as the team prepared it (remap, drop, split, manifest)."""
from __future__ import annotations

import click


@click.group()
def dataset() -> None:
    """Prepare segmentation training data."""


@dataset.command()
@click.argument("source", required=False, type=click.Path(file_okay=False, exists=True))
@click.option("--images", type=click.Path(file_okay=False, exists=True),
              help="Plain layout: folder of photos (instead of SOURCE).")
@click.option("--labels", type=click.Path(file_okay=False, exists=True),
              help="Plain layout: folder of label PNGs, paired by name.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where manifest.jsonl, labels/, dataset.json, dropped.jsonl and report.md go.")
@click.option("--scheme", default="indoor", show_default=True,
              help="Class scheme: 'indoor' (ADE20K 150 -> 10 indoor classes), 'ade20k' (1..150 -> 0..149), "
                   "'none' (keep), or a mapping file (JSON {\"classes\": [...], \"map\": {src: dst}} or 'src dst' lines).")
@click.option("--min-labelled", type=float, default=0.5, show_default=True,
              help="Drop images with a smaller share of labelled pixels (after remapping).")
@click.option("--min-classes", type=int, default=2, show_default=True, help="Drop images with fewer classes present.")
@click.option("--min-side", type=int, default=64, show_default=True, help="Drop images whose shorter side is smaller.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/val split.")
@click.option("--ignore-index", type=int, default=255, show_default=True)
def prepare(source: str | None, images: str | None, labels: str | None, out_dir: str, scheme: str,
            min_labelled: float, min_classes: int, min_side: int, val_fraction: float, seed: int,
            ignore_index: int) -> None:
    """Build a training manifest from an ADE20K-style SOURCE (images/ + annotations/,
    ADE20K class index, 0 = unlabelled) or an --images/--labels folder pair.

    Labels are remapped to --scheme and written to OUT/labels; images that break a
    rule (unreadable, size mismatch, --min-side, --min-labelled, --min-classes, in that
    order) are dropped with the reason; the rest is split train/val with --seed.
    `finetune` and `evaluate` take the result with --manifest OUT/manifest.jsonl.
    """
    from tqdm import tqdm

    from caffe2tf.segmentation.dataset import Rules, prepare_dataset

    if not ((source and not images and not labels) or (not source and images and labels)):
        raise click.UsageError("give an ADE20K-style SOURCE folder, or both --images and --labels")
    if not 0 <= val_fraction < 1:
        raise click.BadParameter("must be in [0, 1)", param_hint="--val-fraction")
    bar = tqdm(desc="prepare", unit="img")
    try:
        result = prepare_dataset(out_dir, ade20k_root=source, images_dir=images, labels_dir=labels, scheme=scheme,
                                 rules=Rules(min_labelled=min_labelled, min_classes=min_classes, min_side=min_side),
                                 val_fraction=val_fraction, seed=seed, ignore_index=ignore_index,
                                 progress=bar.update)
    finally:
        bar.close()
    click.echo(f"kept {len(result.kept)} images (train {result.count('train')}, val {result.count('val')}), "
               f"dropped {len(result.dropped)}; {len(result.class_names)} classes")
    for d in result.dropped[:10]:
        click.echo(f"  dropped {d['image']}: {d['reason']}")
    if len(result.dropped) > 10:
        click.echo(f"  ... {len(result.dropped) - 10} more in {result.out_dir / 'dropped.jsonl'}")
    click.echo(f"manifest: {result.manifest}\nreport: {result.report}")
