"""Generated nets (``netgen.nets``), then broken: numbers, field names, types and lines of the
prototxt mutated, the caffemodel kept. The reader, and the reference executor on whatever
the reader accepts, may only raise a one-line ``Caffe2TFError``; nothing may hang.

Unlike ``tests/frontend/test_bad_input.py`` (mutations of a fixed set of small cases), the
starting points here are every layer type and parameter combination the generator draws.
"""
from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from fuzz_helpers import fuzz_settings, tally, time_limit
from hypothesis import event, given, note
from hypothesis import strategies as st
from netgen import LAYER_TYPES, nets

from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification.reference import run_graph

# The reader accepts values up to 2**31 - 1 elements (8 GiB of float32): a mutated dim can make
# one; running it took 16 GB and the OOM killer in the first long hunt. Those are only read.
MAX_RUN_ELEMENTS = 2_000_000
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")
FIELD = re.compile(r"^(\s*)([a-z_]+)(?=\s*[:{])", re.M)
NUMBERS = ["0", "-1", "1", "2", "3", "-2", "13", "2147483647", "4294967295", "1e40", "-0", "0.5", "nan", "inf"]
FIELDS = ["axis", "num_axes", "kernel_size", "stride", "pad", "dilation", "group", "num_output", "slice_point",
          "offset", "dim", "top_k", "coeff", "operation", "pool", "global_pooling", "round_mode", "end_axis",
          "zoom_factor", "shrink_factor", "pad_beg", "pad_end", "height", "width", "bias_term", "transpose",
          "channel_shared", "local_size", "norm_region", "across_channels", "bottom", "top", "concat_dim",
          "slice_dim", "kernel_h", "stride_w", "pad_h", "use_global_stats", "scale_train", "base", "power"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["number", "number", "number", "field", "type", "drop", "dup"]))
        if op == "number" and (spans := [m.span() for m in NUMBER.finditer(text)]):
            a, b = draw(st.sampled_from(spans))
            text = text[:a] + draw(st.sampled_from(NUMBERS)) + text[b:]
        elif op == "field" and (spans := [m.span(2) for m in FIELD.finditer(text)]):
            a, b = draw(st.sampled_from(spans))
            text = text[:a] + draw(st.sampled_from(FIELDS)) + text[b:]
        elif op == "type" and (spans := [m.span(1) for m in re.finditer(r'type: "(\w+)"', text)]):
            a, b = draw(st.sampled_from(spans))
            text = text[:a] + draw(st.sampled_from(LAYER_TYPES)) + text[b:]
        elif op in ("drop", "dup"):
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if op == "drop" else [lines[i], lines[i]]
            text = "\n".join(lines)
    return text


@fuzz_settings(ci=60, long=30_000)
@given(nets(), st.data())
def test_mutated_generated_nets_raise_only_caffe2tf_errors(gen, data: st.DataObject) -> None:  # noqa: ANN001
    tmp = Path(tempfile.mkdtemp(prefix="c2t-mut-"))
    try:
        proto, model = gen.write(tmp)
        text = data.draw(mutated(proto.read_text()), label="prototxt")
        proto.write_text(text)
        note(text)
        allow_missing = data.draw(st.booleans(), label="allow_missing_weights")
        with time_limit(20, "reading/running a mutated net"):
            try:
                graph = load_net(proto, model, allow_missing_weights=allow_missing)
            except Caffe2TFError as exc:
                assert len(str(exc).splitlines()) == 1, str(exc)
                event("reader refused")
                tally("mutated_nets")
                return
            sizes = [math.prod(v.shape) for v in graph.values.values() if v.shape is not None]
            if sizes and max(sizes) > MAX_RUN_ELEMENTS:  # accepted, but too large to run here
                event("accepted, too large to run")
                tally("mutated_nets")
                return
            rng = np.random.default_rng(0)
            feeds = {graph.values[v].blob: rng.uniform(-2, 2, graph.values[v].shape).astype(np.float32)
                     for v in graph.inputs if graph.values[v].shape is not None}
            try:
                run_graph(graph, feeds)
                event("reader and executor accepted")
            except Caffe2TFError as exc:
                assert len(str(exc).splitlines()) == 1, str(exc)
                event("executor refused")
        tally("mutated_nets")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
