#!/usr/bin/env python3
"""How examples/mini_pspnet/weights.caffemodel was made (re-running it rewrites the file).

1. Convolution weights are drawn He-normal from a fixed seed; BN slopes ~ U(0.8, 1.2),
   BN biases ~ N(0, 0.1).
2. BN statistics are *measured*, layer by layer, with caffe2tf's NumPy Caffe executor
   on synthetic room photos (as a trained net's running statistics come from data),
   so activations have a sane scale.
3. The net is converted (unfolded), trained for ``--steps`` on synthetic rooms with
   ``caffe2tf.segmentation.finetune`` (BN frozen), and the trained convolution
   weights are written back in Caffe's layout, so the example actually segments
   rooms (wall, floor, ceiling, window, door, bed, table, seating, storage, other).

    python examples/mini_pspnet/make_weights.py [--steps 1500]
"""
from __future__ import annotations

import argparse
import logging
import math
import tempfile
from pathlib import Path

import numpy as np

from caffe2tf.frontend import shapes
from caffe2tf.frontend.caffemodel_writer import write_caffemodel
from caffe2tf.frontend.reader import load_net
from caffe2tf.segmentation.preprocess import PSPNET_PREPROCESSING
from caffe2tf.segmentation.synthetic import synthetic_room, write_dataset
from caffe2tf.verification.reference.executor import run_graph

HERE = Path(__file__).resolve().parent
log = logging.getLogger("make_weights")


def initial_weights(graph, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    weights: dict[str, list[np.ndarray]] = {}
    for node in graph.nodes:
        if node.type not in ("Convolution", "BN"):
            continue
        blob_shapes = shapes.infer(node.param, graph.input_shapes(node)).blobs
        if node.type == "Convolution":
            o, i, kh, kw = blob_shapes[0]
            w = [rng.normal(0, math.sqrt(2.0 / (i * kh * kw)), size=blob_shapes[0])]
            if len(blob_shapes) > 1:
                w.append(np.zeros(blob_shapes[1]))
        else:
            c = blob_shapes[0][0]
            w = [rng.uniform(0.8, 1.2, c), rng.normal(0, 0.1, c), np.zeros(c), np.ones(c)]
        weights[node.name] = [np.asarray(a, np.float32) for a in w]
    return weights


def with_weights(graph, weights):
    graph.nodes[:] = [n.with_(weights=tuple(weights[n.name])) if n.name in weights else n for n in graph.nodes]
    return graph


def calibrate_bn(graph, weights, images: np.ndarray) -> None:
    """Set each BN's mean/variance to the statistics of its input on ``images`` (NCHW)."""
    for node in [n for n in graph.nodes if n.type == "BN"]:
        values = run_graph(with_weights(graph, weights), {"data": images})
        x = values[node.inputs[0]].astype(np.float64)
        weights[node.name][2] = x.mean(axis=(0, 2, 3)).astype(np.float32)
        weights[node.name][3] = (x.var(axis=(0, 2, 3)) + 1e-3).astype(np.float32)


def train(graph, weights, steps: int, work: Path) -> None:
    """Fine-tune the converted (unfolded) model; copy trained conv weights back."""
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.backend.layout import conv_kernel_hwio_to_oihw
    from caffe2tf.segmentation.finetune import finetune

    build = build_keras_model(with_weights(graph, weights), outputs="graph")
    write_dataset(work / "train", 96, size=160, seed=1000, classes="indoor")
    finetune(build.model, work / "train" / "images", work / "train" / "labels", work / "ft", steps,
             batch_size=8, lr=0.01, from_logits=True, checkpoint_every=max(steps, 1), seed=0)
    for node in graph.nodes:
        if node.type != "Convolution":
            continue
        layer = next(build.model.get_layer(n) for n in build.keras_layer_for_node[node.name]
                     if hasattr(build.model.get_layer(n), "kernel"))
        trained = layer.get_weights()
        weights[node.name][0] = conv_kernel_hwio_to_oihw(trained[0]).astype(np.float32)
        if len(trained) > 1:
            weights[node.name][1] = trained[1].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=str(HERE / "weights.caffemodel"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    graph = load_net(HERE / "deploy.prototxt")
    weights = initial_weights(graph, np.random.default_rng(2026))
    pre = PSPNET_PREPROCESSING
    photos = [synthetic_room(113, seed=s, classes="indoor")[0] for s in range(16)]
    x = np.stack([pre.to_net_input(p) for p in photos]).transpose(0, 3, 1, 2).astype(np.float32)
    calibrate_bn(graph, weights, x)
    if args.steps:
        with tempfile.TemporaryDirectory() as tmp:
            train(graph, weights, args.steps, Path(tmp))
    layers = []
    for node in graph.nodes:
        if node.name in weights:
            blobs = weights[node.name]
            if node.type == "BN":  # PSPNet stores BN blobs as 1xCx1x1
                blobs = [b.reshape(1, -1, 1, 1) for b in blobs]
            layers.append((node.name, node.type, blobs))
    write_caffemodel(args.out, layers, name="mini_pspnet")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
