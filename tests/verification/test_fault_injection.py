"""Fault injection: corrupt one translator, and `diff` must name exactly that layer.

Each fault is a translator registered over the built-in one (``override=True``)
for the duration of one test; the registry is restored afterwards. The unit
cases use the one-semantic recordings of real Caffe; the slow cases run the
whole PSPNet-50 against its recorded ``reference.h5``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pytest

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import Caffe2TFError
from caffe2tf.backend import registry
from caffe2tf.backend.translators.normalization import affine, batchnorm_statistics
from caffe2tf.verification.diff import DiffReport, compare_activations, diff_net

SHARED_REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "caffe_reference"
PSPNET = SHARED_REFERENCE / "pspnet50_ade20k_473"


@pytest.fixture
def override() -> Callable[[str, Callable], None]:
    """``override(type, fn)``: make ``fn`` the translator of ``type`` until the test ends."""
    saved: list[tuple[str, Callable | None]] = []

    def install(layer_type: str, fn: Callable) -> None:
        before = registry.get_translator(layer_type) if registry.describe(layer_type)["user"] else None
        saved.append((layer_type, before))
        registry.translator(layer_type, override=True)(fn)

    yield install
    for layer_type, before in reversed(saved):
        registry.unregister(layer_type)
        if before is not None:
            registry.translator(layer_type, override=True)(before)


# ------------------------------------------------------------------------------------ the faults

def interp_half_pixel(node, inputs, ctx):
    """Interp as TensorFlow's default resize (half-pixel centres, not align-corners)."""
    h, w = ctx.out_shapes(node)[0][2:]
    return [keras.layers.Resizing(h, w, interpolation="bilinear", name=ctx.layer_name(node))(inputs[0])]


def _pool_kernel_stride(node):
    p = node.param.pooling_param
    is_max = p.pool == caffe_pb2.PoolingParameter.MAX
    return (keras.layers.MaxPooling2D if is_max else keras.layers.AveragePooling2D), p.kernel_size, p.stride


def pool_floor(node, inputs, ctx):
    """Floor rounding (TensorFlow's "valid"): the output is smaller than Caffe's."""
    cls, k, s = _pool_kernel_stride(node)
    return [cls(k, s, padding="valid", name=ctx.layer_name(node))(inputs[0])]


def pool_floor_zero_padded(node, inputs, ctx):
    """Floor rounding, then zero-padded at the bottom/right to Caffe's (ceil) size."""
    cls, k, s = _pool_kernel_stride(node)
    y = cls(k, s, padding="valid", name=ctx.layer_name(node, "_floor"))(inputs[0])
    out = ctx.out_shapes(node)[0]
    pad = ((0, out[2] - y.shape[1]), (0, out[3] - y.shape[2]))
    return [keras.layers.ZeroPadding2D(pad, name=ctx.layer_name(node))(y)]


def ave_pool_excluding_pad(node, inputs, ctx):
    """AVE as TensorFlow's "same" pooling, whose divisor leaves the padding out."""
    _, k, s = _pool_kernel_stride(node)
    return [keras.layers.AveragePooling2D(k, s, padding="same", name=ctx.layer_name(node))(inputs[0])]


def _bn_with_eps(node, inputs, ctx, eps: float):
    slope, bias, mean, var = (w.astype(np.float32) for w in node.weights)
    scale = (slope / np.sqrt(var + np.float32(eps))).astype(np.float32)
    return [affine(inputs[0], ctx.in_shapes(node)[0], 1, ctx.layer_name(node), mean=mean, scale=scale, bias=bias)]


def bn_keras_default_eps(node, inputs, ctx):
    """BN with Keras's default epsilon 1e-3 instead of the prototxt's."""
    return _bn_with_eps(node, inputs, ctx, 1e-3)


def bn_eps_dropped_at(target: str) -> Callable:
    """BN that drops eps (eps = 0) at the layer ``target`` only."""
    builtin = registry.builtin_translators()["BN"]

    def bn(node, inputs, ctx):
        return _bn_with_eps(node, inputs, ctx, 0.0) if node.name == target else builtin(node, inputs, ctx)

    return bn


def batchnorm_ignores_scale_factor(node, inputs, ctx):
    """BatchNorm that reads blob 0/1 as the mean/variance, ignoring the scale-factor blob 2."""
    mean, var, factor = node.weights
    m, inv_std = batchnorm_statistics(mean, var, np.ones_like(factor), node.param.batch_norm_param.eps)
    return [affine(inputs[0], ctx.in_shapes(node)[0], 1, ctx.layer_name(node), mean=m, scale=inv_std)]


def ip_caffe_order_weights(node, inputs, ctx):
    """InnerProduct after a 4-D bottom: NHWC flatten with Caffe's (C,H,W-ordered) weights."""
    if len(ctx.in_shapes(node)[0]) != 4:
        return registry.builtin_translators()["InnerProduct"](node, inputs, ctx)
    p = node.param.inner_product_param
    w, b = node.weights
    x = keras.layers.Flatten(name=ctx.layer_name(node, "_flatten"))(inputs[0])
    dense = keras.layers.Dense(p.num_output, name=ctx.layer_name(node))
    y = dense(x)
    dense.set_weights([np.ascontiguousarray(w.T), b])
    return [y]


# ------------------------------------------------------------------------------------- unit cases

def _case_diff(case: str, **kwargs) -> DiffReport:
    d = SHARED_REFERENCE / case
    kwargs.setdefault("source", "file")
    if kwargs["source"] == "file":
        kwargs["reference_path"] = str(d / "reference.h5")
    return diff_net(str(d / "net.prototxt"), str(d / "weights.caffemodel"), **kwargs)


UNIT_FAULTS = [
    # (case, Caffe type, fault, the layer diff must name)
    ("interp", "Interp", interp_half_pixel, "zoom"),
    ("pool_max_ceil_even", "Pooling", pool_floor_zero_padded, "pool"),
    ("pool_ave_pad", "Pooling", ave_pool_excluding_pad, "pool"),
    ("bn_pspnet", "BN", bn_keras_default_eps, "conv/bn"),
    ("batchnorm_scale", "BatchNorm", batchnorm_ignores_scale_factor, "bn"),
    ("inner_product_after_conv", "InnerProduct", ip_caffe_order_weights, "fc"),
]


@pytest.mark.parametrize("case,layer_type,fault,culprit", UNIT_FAULTS, ids=[f[0] for f in UNIT_FAULTS])
def test_unit_fault_is_named(override, case: str, layer_type: str, fault: Callable, culprit: str) -> None:
    correct = _case_diff(case)
    assert correct.ok and correct.exit_status == 0, correct.headline
    override(layer_type, fault)
    report = _case_diff(case)
    assert report.exit_status == 1
    assert report.first_divergence is not None and report.first_divergence.name == culprit, report.headline
    assert report.headline.startswith(f"FIRST DIVERGENCE: layer `{culprit}` ({layer_type}")
    # everything before the culprit still agrees
    before = [r for r in report.layers if r.depth < report.first_divergence.depth]
    assert all(r.status == "ok" for r in before)


def test_builtin_source_names_the_same_layer(override) -> None:
    override("Interp", interp_half_pixel)
    report = _case_diff("interp", source="builtin")
    assert report.first_divergence is not None and report.first_divergence.name == "zoom"


def test_pool_floor_without_padding_fails_the_build_naming_the_layer(override) -> None:
    override("Pooling", pool_floor)
    with pytest.raises(Caffe2TFError) as info:
        _case_diff("pool_max_ceil_even")
    assert info.value.layer == "pool" and "shape" in str(info.value)


# --------------------------------------------------------------------------------- PSPNet-50

@pytest.fixture(scope="module")
def pspnet(case_caffemodel) -> dict:
    return {"prototxt": str(PSPNET / "net.prototxt"), "caffemodel": str(case_caffemodel(PSPNET)),
            "reference_path": str(PSPNET / "reference.h5")}


@pytest.fixture(scope="module")
def pspnet_correct(pspnet) -> dict[str, DiffReport]:
    """The correct conversion judged at the default tolerance and at a far tighter 1e-6
    (one model run; the activations are dropped once both reports exist)."""
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.verification.reference_file import read_reference
    from caffe2tf.verification.sources import model_activations

    graph = load_net(pspnet["prototxt"], pspnet["caffemodel"])
    reference = read_reference(pspnet["reference_path"])
    actual = model_activations(build_keras_model(graph, outputs="all"), graph, reference.inputs)
    return {"default": compare_activations(graph, actual, reference),
            "tight": compare_activations(graph, actual, reference, tolerance=1e-6)}


@pytest.mark.slow
def test_pspnet_correct_conversion_is_ok(pspnet_correct) -> None:
    report = pspnet_correct["default"]
    assert report.ok and report.exit_status == 0, report.headline
    assert report.tolerance == 2e-4 and "50+ layers" in report.tolerance_origin
    assert len(report.compared) == 205
    assert report.headline == "OK: all 205 layer outputs within 2e-4"
    assert 1e-6 < report.max_rel < 2e-4  # float32 rounding, grown along the depth
    assert all(lm["passes"] for lm in report.label_maps)
    # the BN after each pyramid pooling magnifies what it receives (README: 10-15x), within its allowance
    bn = report.layer_diff("conv5_3_pool1_conv/bn")
    assert bn.gain is not None and 3 < bn.gain < bn.amplification


@pytest.mark.slow
def test_pspnet_rounding_growth_past_a_tight_tolerance_is_not_a_culprit(pspnet_correct) -> None:
    """Judged at 1e-6, most outputs exceed the tolerance through rounding alone, yet no
    layer adds error far beyond what it received: still OK (exit 0)."""
    report = pspnet_correct["tight"]
    assert report.ok and report.exit_status == 0, report.headline
    assert len(report.over_tolerance) > 50
    assert {r.status for r in report.over_tolerance} == {"growth"}
    assert report.headline.startswith("OK: no layer adds error beyond float32 rounding")


@pytest.mark.slow
def test_pspnet_interp_half_pixel_deep_inside(override, pspnet) -> None:
    """All Interp layers go half-pixel. The first, conv5_3_pool1_interp, resizes 1x1 (no
    difference); conv5_3_pool2_interp, 188th of 205 layers, is the first to diverge."""
    override("Interp", interp_half_pixel)
    report = diff_net(pspnet["prototxt"], pspnet["caffemodel"], source="file",
                      reference_path=pspnet["reference_path"])
    c = report.first_divergence
    assert report.exit_status == 1 and c is not None and c.name == "conv5_3_pool2_interp", report.headline
    assert c.max_rel > 1e-2 and c.input_rel < 1e-4
    assert report.layer_diff("conv5_3_pool1_interp").status == "ok"


@pytest.mark.slow
def test_pspnet_bn_eps_dropped_in_the_pyramid(override, pspnet) -> None:
    """eps left out of one BN after the pyramid pooling (small variance): a subtle error,
    found deep in the net against accumulated rounding."""
    target = "conv5_3_pool2_conv/bn"
    override("BN", bn_eps_dropped_at(target))
    report = diff_net(pspnet["prototxt"], pspnet["caffemodel"], source="file",
                      reference_path=pspnet["reference_path"])
    c = report.first_divergence
    assert report.exit_status == 1 and c is not None and c.name == target, report.headline
    assert report.headline.startswith(f"FIRST DIVERGENCE: layer `{target}` (BN, eps 1e-5)")
