"""Graph -> Graph rewrites, run from one ordered pipeline.

Reading already did the structural rewrites (V1 upgrade, phase filtering, SSA
renaming of in-place tops); passes here change the computation's form, never
its result beyond float32 rounding.
"""
from __future__ import annotations

from caffe2tf.ir import Graph
from caffe2tf.passes.fold_affine import fold_affine_into_linear

# Order matters only among passes that rewrite the same pattern; today there is one.
DEFAULT_PIPELINE = (
    fold_affine_into_linear,  # BatchNorm / BN / Scale / Bias into the conv or FC before them
)


def run_passes(graph: Graph, *, fold: bool = True) -> Graph:
    if fold:
        for p in DEFAULT_PIPELINE:
            graph = p(graph)
    return graph


__all__ = ["DEFAULT_PIPELINE", "run_passes", "fold_affine_into_linear"]
