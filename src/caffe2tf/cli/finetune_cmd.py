"""`caffe2tf finetune`: train a converted segmentation model further on image/label pairs."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import click

from caffe2tf.errors import Caffe2TFError


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--images", type=click.Path(file_okay=False), help="Folder of photos.")
@click.option("--labels", type=click.Path(file_okay=False), help="Folder of label PNGs (same names).")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True),
              help="Instead of --images/--labels: a manifest.jsonl written by `caffe2tf dataset prepare`.")
@click.option("--split", type=click.Choice(["train", "val"]), default="train", show_default=True,
              help="Which split of --manifest to train on.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the fine-tuned model (a directory `segment`/`evaluate`/`serve` accept) and checkpoints go.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Total SGD steps (the poly schedule spans them).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Global batch: split over all replicas (GPUs / workers) of --strategy.")
@click.option("--lr", type=float, default=0.01, show_default=True, help="Base learning rate (poly decay, power 0.9).")
@click.option("--ignore-index", type=int, default=255, show_default=True)
@click.option("--label-offset", type=int, default=0, show_default=True,
              help="Subtract from stored labels (1 for ADE20K's 1-based annotations); negatives are ignored.")
@click.option("--train-bn", is_flag=True, help="Also train BatchNormalization layers (frozen by default).")
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over even if OUT/checkpoints holds a checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multi-worker"]), default="default",
              show_default=True, help="tf.distribute strategy: mirrored = all GPUs of this host; multi-worker = "
                                      "MultiWorkerMirroredStrategy across hosts, configured by TF_CONFIG "
                                      "(docs/distributed.md). Run the same command on every worker.")
def finetune(model_dir: str, images: str | None, labels: str | None, manifest: str | None, split: str, out_dir: str, steps: int, batch_size: int, lr: float,
             ignore_index: int, label_offset: int, train_bn: bool, checkpoint_every: int, no_resume: bool,
             seed: int, strategy: str) -> None:
    """Fine-tune a converted segmentation model (PSPNet recipe: random scale, crop
    and flip; pixel-wise cross-entropy ignoring --ignore-index; SGD momentum 0.9
    with the poly learning-rate schedule; checkpoints; resumable).

    Convert with --no-fold for fine-tuning: BN layers then stay separate (and
    frozen) instead of rescaling the convolution weights.

    The result in OUT is a converted-model directory like MODEL_DIR's
    (model.keras, saved_model/, conversion.json), so `segment`, `evaluate`,
    `serve` and `export` accept it. With --strategy multi-worker the chief
    (worker 0) writes it; OUT must be storage every worker shares. A restarted
    cluster resumes from OUT/checkpoints.
    """
    import numpy as np

    from caffe2tf.segmentation.distributed import make_strategy

    try:  # first: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op
        dist = make_strategy(strategy)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    from caffe2tf.model_dir.converted import ConvertedModel
    from caffe2tf.model_dir.record import read_record, write_record
    from caffe2tf.model_dir.saved_model import export_saved_model
    from caffe2tf.segmentation.finetune import finetune as run_finetune

    pairs = None
    if manifest is not None:
        if images or labels:
            raise click.UsageError("give --manifest or --images/--labels, not both")
        from caffe2tf.segmentation.dataset import read_manifest

        pairs = read_manifest(manifest, split)
    elif not (images and labels):
        raise click.UsageError("give --images and --labels, or --manifest")
    record_only = read_record(Path(model_dir))
    if strategy == "default":
        src = ConvertedModel.load(model_dir)
        model_or_factory = src.model
    else:  # built inside the strategy's scope by finetune()
        src = ConvertedModel(path=Path(model_dir), record=record_only, model=None)
        model_or_factory = lambda: ConvertedModel.load(model_dir).model  # noqa: E731
    if src.input_layout != "nhwc":
        raise Caffe2TFError("fine-tuning needs a model converted with the default NHWC input layout", file=model_dir)
    if src.record.folds:
        click.echo("note: this model was converted with BatchNorm/BN folded into its convolutions, which "
                   "makes SGD badly conditioned; for fine-tuning, convert with --no-fold (BN stays a "
                   "frozen layer)", err=True)
    out = Path(out_dir)

    def label_transform(gt: np.ndarray) -> np.ndarray:
        if not label_offset:
            return gt
        g = gt.astype(np.int64)
        keep = (g != ignore_index) & (g >= label_offset)
        return np.where(keep, g - label_offset, ignore_index)

    result = run_finetune(model_or_factory, images, labels, out, steps, batch_size=batch_size, lr=lr,
                          ignore_index=ignore_index, from_logits=True,
                          preprocessing=src.record.photo_preprocessing(), freeze_bn=not train_bn,
                          checkpoint_every=checkpoint_every, resume=not no_resume, seed=seed,
                          label_transform=label_transform if label_offset else None, pairs=pairs,
                          strategy=dist)
    plan = result.plan
    click.echo(f"strategy {plan['strategy']}: {plan['workers']} worker(s), {plan['replicas']} replica(s); "
               f"global batch {plan['global_batch']} ({plan['per_replica_batch']} per replica); "
               f"learning rate {plan['schedule']}")
    if not result.chief:
        click.echo(f"worker {plan['task']}: {result.start_step} -> {result.final_step} steps; the chief writes {out}")
        return
    model = result.model
    if strategy != "default":  # export plain (non-distributed) variables
        import keras

        import caffe2tf.backend.layers  # noqa: F401  (registers custom layers)

        model = keras.models.load_model(result.model_path, compile=False)
    record = dataclasses.replace(src.record)
    record.finetuned = {"from": str(model_dir), "steps": result.final_step, "images": str(images),
                           "labels": str(labels), "manifest": manifest and f"{manifest} ({split})", "lr": lr, "batch_size": batch_size,
                           "final_loss": result.losses[-1] if result.losses else None,
                           "strategy": plan, "median_step_s": (sorted(result.step_seconds)[len(result.step_seconds) // 2]
                                                               if result.step_seconds else None)}
    saved = out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    export_saved_model(model, saved)
    write_record(out, record)
    click.echo(f"fine-tuned {result.start_step} -> {result.final_step} steps in {result.seconds:.1f}s"
               + (f", last loss {result.losses[-1]:.4f}" if result.losses else "") + f" -> {out}")
