"""The command-line options `segment`, `evaluate` and `serve` share, and thin calls into
:mod:`caffe2tf.segmentation.loader` (which loads a converted model and its segmentation setup)."""
from __future__ import annotations

from typing import Callable

import click

from caffe2tf.cli.options import parse_number_list
# re-exported for the commands (`segment`, `evaluate`, `serve`) that import them from here
from caffe2tf.segmentation.loader import LoadedSegmenter, make_gt_transform, protocol_kwargs


def protocol_options(fn: Callable) -> Callable:
    """Preprocessing and sliding-window options shared by `segment` and `evaluate`."""
    options = [
        click.option("--mean", help="Per-channel mean in the net's channel order (default: recorded at "
                                    "conversion, else PSPNet's ImageNet mean)."),
        click.option("--scale", type=float, help="Multiply the mean-subtracted input by this (default: recorded)."),
        click.option("--bgr/--rgb", default=None, help="Channel order the net expects (default: recorded, BGR)."),
        click.option("--base-size", type=int, help="Long side the image is resized to before windowing "
                                                   "(default: 512 for a 473 crop as in PSPNet, else the crop)."),
        click.option("--scales", help="Comma-separated multi-scale list, e.g. 0.5,0.75,1,1.25,1.5,1.75."),
        click.option("--flip/--no-flip", default=None, help="Add the horizontally flipped image's scores."),
        click.option("--classes", "classes", help="Class names: 'ade20k', 'indoor' (ADE20K grouped into 10 "
                                                  "indoor classes), or a file with one name per line."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def load_segmenter(model_dir: str, *, mean: str | None, scale: float | None, bgr: bool | None,
                   base_size: int | None, scales: str | None, flip: bool | None,
                   classes: str | None) -> LoadedSegmenter:
    """:func:`caffe2tf.segmentation.loader.load_segmenter` with :func:`protocol_options`' values."""
    from caffe2tf.segmentation.loader import load_segmenter as load

    parsed_scales = parse_number_list(scales, "--scales")
    parsed_mean = parse_number_list(mean, "--mean") if mean is not None else None
    if parsed_mean is not None and len(parsed_mean) != 3:
        raise click.BadParameter("give 3 values", param_hint="--mean")
    return load(model_dir, mean=parsed_mean, scale=scale, bgr=bgr, base_size=base_size, scales=parsed_scales,
                flip=flip, classes=classes)


def engine_options(fn: Callable) -> Callable:
    """`--engine local|ray` and the Ray pool's size, shared by `segment` and `evaluate`."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: this process; ray: Ray Data actor pool (model loaded once per actor; "
                          "pip install 'caffe2tf[ray]').",),
        click.option("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)."),
        click.option("--ray-actors", type=int, help="Actors in the pool (default: the cluster's CPUs minus one "
                                                     "for decoding, divided by --ray-cpus-per-actor)."),
        click.option("--ray-cpus-per-actor", type=float, default=1.0, show_default=True),
        click.option("--ray-gpus-per-actor", type=float, default=0.0, show_default=True),
        click.option("--ray-batch", type=int, default=4, show_default=True, help="Images per actor call."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def ray_kwargs(ray_actors: int | None, ray_cpus_per_actor: float, ray_gpus_per_actor: float,
               ray_batch: int) -> dict:
    if ray_actors is not None and ray_actors < 1:
        raise click.BadParameter("must be >= 1", param_hint="--ray-actors")
    if ray_cpus_per_actor <= 0 or ray_batch < 1:
        raise click.BadParameter("must be positive", param_hint="--ray-cpus-per-actor/--ray-batch")
    return dict(actors=ray_actors, cpus_per_actor=ray_cpus_per_actor, gpus_per_actor=ray_gpus_per_actor,
                batch_size=ray_batch)


__all__ = ["LoadedSegmenter", "load_segmenter", "protocol_options", "protocol_kwargs", "engine_options", "ray_kwargs",
           "make_gt_transform"]
