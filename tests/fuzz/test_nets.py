"""Generated nets (``netgen.nets``) through every stage: reader, passes, executor, Keras.

Each drawn net is one Caffe would run (the generator keeps Caffe's shape formulas), so:

* ``load_net`` must accept it, and its inferred shapes must be the shapes the NumPy
  reference executor's kernels produce;
* folding BatchNorm/BN/Scale/Bias (``run_passes(fold=True)``) may change the outputs only
  by float32 rounding: <= 1e-5 of max|ref| (the README's one-semantic tolerance; the fold
  multiplies weights in float64 and rounds once, so the difference is a few ulps of the
  output scale);
* the graph written back by the prototxt/caffemodel writers and read again computes the
  same outputs (same kernels on the same numbers: <= 1e-6 of max|ref|, not bit-equality,
  since the fold's rounded weights are what is written);
* the Keras model (built once per example, folded and unfolded) agrees with the executor on
  every graph output at the README tolerance, 1e-5 of max|ref| (small nets; TF kernels
  accumulate in another order than NumPy's).

Anything else that escapes is a bug; a ``Caffe2TFError`` from the Keras builder is accepted
only for nets that work across the batch axis (Keras cannot), and never one that wraps an
internal exception. A net whose reference outputs overflow is not compared (counted in the
statistics as an event).
"""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import fuzz_settings, tally, time_limit
from hypothesis import Phase, event, given, note
from hypothesis import strategies as st
from netgen import GeneratedNet, nets

from caffe2tf.ir import Graph
from caffe2tf.passes import run_passes
from caffe2tf.frontend.prototxt_writer import write_net
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification.reference import run_graph

TOL = 1e-5  # README: max|d| / max(max|ref|, 1e-6) for one-semantic (small) nets
ROUND_TRIP_TOL = 1e-6  # the same kernels on the same (written, re-read) numbers


def rel_err(actual: np.ndarray, ref: np.ndarray) -> float:
    if actual.shape != ref.shape:
        return math.inf
    if not ref.size:
        return 0.0
    d = np.abs(actual.astype(np.float64) - ref.astype(np.float64))
    return float(d.max() / max(float(np.abs(ref).max()), 1e-6))


def feeds_for(gen: GeneratedNet, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-2, 2, s).astype(np.float32) for k, s in gen.inputs.items()}


class Staged:
    """One generated net read, folded and run by the executor (the cheap stages)."""

    def __init__(self, gen: GeneratedNet, seed: int, tmp: Path) -> None:
        self.gen = gen
        proto, model = gen.write(tmp)
        self.tmp = tmp
        try:
            self.graph = load_net(proto, model)
        except Caffe2TFError as exc:
            pytest.fail(f"load_net refused a valid net: {exc}")
        assert self.graph.outputs, "a net with layers has outputs"
        self.feeds = feeds_for(gen, seed)
        self.ref = self._run(self.graph, "unfolded")
        for vid, arr in self.ref.items():  # shape inference = what the kernels compute
            want = self.graph.values[vid].shape
            assert want is None or tuple(arr.shape) == tuple(want), \
                f"value {vid}: shapes.py says {want}, the reference kernel made {arr.shape}"
        self.folded = run_passes(self.graph, fold=True)
        self.folds = len(self.graph.nodes) - len(self.folded.nodes)
        event(f"folds: {min(self.folds, 2)}")
        self.ref_folded = self._run(self.folded, "folded") if self.folds else self.ref
        self.finite = all(np.isfinite(self.ref[v]).all() for v in self.graph.outputs)
        event("reference finite" if self.finite else "reference overflows: not compared")

    def _run(self, graph: Graph, what: str) -> dict[str, np.ndarray]:
        try:
            return run_graph(graph, self.feeds)
        except Caffe2TFError as exc:
            pytest.fail(f"the reference executor refused a valid net ({what}): {exc}")

    def check_fold_and_round_trip(self) -> None:
        if not self.finite:
            return
        for v in self.graph.outputs:
            e = rel_err(self.ref_folded[v], self.ref[v])
            assert e <= TOL, f"folding changed output {v} by {e:.3g} of max|ref| (> {TOL})"
        proto, model = write_net(self.folded, self.tmp / "again.prototxt", self.tmp / "again.caffemodel")
        try:
            again = load_net(proto, model)
        except Caffe2TFError as exc:
            pytest.fail(f"the written-back net does not read again: {exc}")
        back = run_graph(again, self.feeds)
        by_blob = {again.values[v].blob: v for v in again.outputs}
        for v in self.folded.outputs:
            blob = self.folded.values[v].blob
            assert blob in by_blob, f"output {blob} lost in the written-back net ({sorted(by_blob)})"
            e = rel_err(back[by_blob[blob]], self.ref_folded[v])
            assert e <= ROUND_TRIP_TOL, f"written-back net changed output {blob} by {e:.3g}"


def _staged(gen: GeneratedNet, seed: int):
    tmp = Path(tempfile.mkdtemp(prefix="c2t-fuzz-"))
    try:
        note(gen.prototxt)
        with time_limit(60, "reading/running a generated net"):
            s = Staged(gen, seed, tmp)
            s.check_fold_and_round_trip()
        return s
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@fuzz_settings(ci=80, long=20_000)
@given(nets(), st.integers(0, 2**32 - 1))
def test_generated_nets_read_fold_and_execute(gen: GeneratedNet, seed: int) -> None:
    _staged(gen, seed)
    tally("executor")


def keras_outputs(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import keras

    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.backend import layout

    result = build_keras_model(graph)
    xs = [layout.nchw_to_keras(feeds[graph.values[v].blob]) for v in graph.inputs]
    out = result.model(xs[0] if len(xs) == 1 else xs, training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    got = {v: layout.keras_to_nchw(np.asarray(t)) for v, t in zip(graph.outputs, outs)}
    keras.backend.clear_session()
    return got


# Shrinking rebuilds a Keras model per step (minutes): off; a failure prints the whole net.
@fuzz_settings(ci=6, long=400, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(nets(max_layers=5), st.integers(0, 2**32 - 1))
def test_generated_nets_keras_agrees_with_executor(gen: GeneratedNet, seed: int) -> None:
    s = _staged(gen, seed)
    for graph, ref, what in ((s.graph, s.ref, "unfolded"), (s.folded, s.ref_folded, "folded"))[: 2 if s.folds else 1]:
        try:
            with time_limit(300, "building/running the Keras model"):
                got = keras_outputs(graph, s.feeds)
        except Caffe2TFError as exc:
            msg = str(exc)
            assert len(msg.splitlines()) == 1, msg
            assert " failed: " not in msg, f"an internal error escaped a translator: {msg}"
            if not gen.touches_batch:
                pytest.fail(f"Keras refused a net that keeps the batch axis apart ({what}): {msg}")
            event("keras refused a batch-axis net")
            tally("keras")
            return
        event(f"keras built ({what})")
        if not s.finite:
            continue
        for v in graph.outputs:
            e = rel_err(got[v], ref[v])
            assert e <= TOL, (f"{what}: Keras output {graph.values[v].blob} differs from the executor by "
                              f"{e:.3g} of max|ref| (> {TOL}); shapes {got[v].shape} vs {ref[v].shape}")
    tally("keras")
