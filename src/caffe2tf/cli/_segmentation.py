"""What `segment`, `evaluate` and `serve` share: load a converted model and its
segmentation setup (crop size, classes, preprocessing, PSPNet protocol)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import click
import numpy as np

from caffe2tf.cli.options import parse_number_list
from caffe2tf.errors import Caffe2TFError


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


@dataclass
class LoadedSegmenter:
    model: object          # caffe2tf.model_dir.served.ServedModel
    setup: object          # caffe2tf.segmentation.setup.SegmentationSetup
    class_names: list[str]
    to_output_classes: Callable[[np.ndarray], np.ndarray]  # model labels -> reported labels
    num_output_classes: int

    def logits_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.setup.logits_fn()


def load_segmenter(model_dir: str, *, mean: str | None, scale: float | None, bgr: bool | None,
                   base_size: int | None, scales: str | None, flip: bool | None,
                   classes: str | None) -> LoadedSegmenter:
    from caffe2tf.model_dir.served import ServedModel
    from caffe2tf.segmentation import classes as cls
    from caffe2tf.segmentation.errors import NotASegmenterError
    from caffe2tf.segmentation.preprocess import Preprocessing
    from caffe2tf.segmentation.setup import segmentation_setup

    model = ServedModel.load(model_dir)
    setup, why = segmentation_setup(model, base_size=base_size, scales=parse_number_list(scales, "--scales"),
                                    flip=flip)
    if setup is None:
        raise NotASegmenterError(why, file=model_dir)
    pre = setup.preprocessing
    if mean is not None or scale is not None or bgr is not None:
        use_bgr = pre.bgr if bgr is None else bgr
        mean_rgb = pre.mean_rgb
        if mean is not None:
            m = parse_number_list(mean, "--mean")
            if len(m) != 3:
                raise click.BadParameter("give 3 values", param_hint="--mean")
            mean_rgb = tuple(m[::-1]) if use_bgr else tuple(m)
        setup.preprocessing = Preprocessing(mean_rgb=mean_rgb, scale=pre.scale if scale is None else scale,
                                            bgr=use_bgr)
    identity = lambda labels: labels  # noqa: E731
    if classes == "indoor" and setup.num_classes == 150:
        mapping = cls.indoor_mapping()
        names = cls.load_class_names("indoor")
        return LoadedSegmenter(model, setup, names, lambda labels: cls.remap(labels, mapping), len(names))
    if classes is not None:
        try:
            names = cls.load_class_names(classes)
        except OSError as exc:
            raise Caffe2TFError(f"cannot read class names: {exc.strerror or exc}", file=classes) from None
        if len(names) < setup.num_classes:
            raise Caffe2TFError(f"{len(names)} class names for a model with {setup.num_classes} classes",
                                file=classes)
        setup.class_names = list(names[:setup.num_classes])
    return LoadedSegmenter(model, setup, list(setup.class_names), identity, setup.num_classes)


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


def make_gt_transform(seg: LoadedSegmenter, *, ignore_index: int, label_offset: int,
                      to_output: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Stored labels -> reported classes: subtract ``label_offset`` (negatives ignored), then,
    with ``to_output``, map model classes to the reported ones (e.g. ADE20K -> indoor)."""
    def gt_transform(gt: np.ndarray) -> np.ndarray:
        g = gt.astype(np.int64)
        if label_offset:
            keep = (g != ignore_index) & (g >= label_offset)
            g = np.where(keep, g - label_offset, ignore_index)
        return seg.to_output_classes(g) if to_output else g
    return gt_transform


def protocol_kwargs(seg: LoadedSegmenter) -> dict:
    s = seg.setup
    return dict(crop_size=s.crop_size, num_classes=s.num_classes, preprocessing=s.preprocessing, **s.protocol)


__all__ = ["LoadedSegmenter", "load_segmenter", "protocol_options", "protocol_kwargs", "engine_options", "ray_kwargs",
           "make_gt_transform"]
