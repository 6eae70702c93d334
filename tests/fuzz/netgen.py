"""Hypothesis strategies for small *valid but unusual* Caffe nets.

:func:`nets` draws a :class:`GeneratedNet`: a ``NetParameter`` (written to prototxt text by
the project's prototxt writer) and the layers' blobs (written by the project's caffemodel
writer). The generator keeps its own NCHW shape of every blob (Caffe's formulas, written out
here independently of ``frontend/shapes/``) so that every drawn net is one Caffe itself
would run: layer types are those that both the Keras translators and the NumPy reference
executor know; parameters range over each type's fields (kernel/stride/pad/dilation/group,
ceil/floor and global pooling, axes, coefficients, transposes, zero/-1 reshape dims, ...);
shapes stay small (N <= 2, C <= 6, H, W <= 12).

Values are kept finite where a layer needs it (``Log`` only of positive blobs, ``Power``
with integer exponents unless its base is positive); a net whose reference output still
overflows is not compared (the test counts it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.caffemodel_writer import write_caffemodel
from caffe2tf.frontend.prototxt_writer import net_to_prototxt

PP = caffe_pb2.PoolingParameter
EP = caffe_pb2.EltwiseParameter
RP = caffe_pb2.ReductionParameter
LP = caffe_pb2.LRNParameter

Shape = tuple[int, ...]

#: Layer types the generator draws (all have a translator and a reference kernel).
LAYER_TYPES = (
    "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "ELU", "Sigmoid", "TanH",
    "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold", "Dropout", "Clip", "Swish", "ReLU6", "PReLU",
    "BatchNorm", "BN", "Scale", "Bias", "Eltwise", "Concat", "Slice", "Split", "Flatten", "Reshape",
    "Crop", "Interp", "ArgMax", "Reduction", "Softmax", "LRN", "MVN",
)
#: Types that take a 4-D bottom only.
FOUR_D = {"Convolution", "Deconvolution", "Pooling", "Interp", "LRN"}
ELEMENTWISE = {"ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold",
               "Dropout", "Clip", "Swish", "ReLU6", "PReLU", "BatchNorm", "BN", "Scale", "Bias"}


@dataclass
class Blob:
    name: str
    shape: Shape
    nonneg: bool = False  # every value >= 0 (Log may take it, with a positive shift)
    index: bool = False  # holds ArgMax indices (compared exactly, fed to nothing)


@dataclass
class GeneratedNet:
    net: caffe_pb2.NetParameter
    weights: list[tuple[str, str, list[np.ndarray]]]
    inputs: dict[str, Shape]
    touches_batch: bool = False  # some layer works across the batch axis (Keras may refuse it)
    flavour: dict = field(default_factory=dict)  # write_caffemodel keyword arguments

    @property
    def prototxt(self) -> str:
        return net_to_prototxt(self.net)

    def write(self, directory: Path) -> tuple[Path, Path]:
        proto = directory / "net.prototxt"
        proto.write_text(self.prototxt)
        model = directory / "weights.caffemodel"
        write_caffemodel(model, self.weights, **self.flavour)
        return proto, model

    def describe(self) -> str:
        return self.prototxt


def _f32(draw: st.DrawFn, lo: float, hi: float) -> float:
    """A float32-representable value in [lo, hi] (prototxt text round-trips it)."""
    return float(np.float32(draw(st.floats(lo, hi, allow_nan=False, width=32))))


def _array(draw: st.DrawFn, shape: Shape, *, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, shape).astype(np.float32)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _set_spatial(draw: st.DrawFn, p, what: str, hw: tuple[int, int], *, allow_repeated_pair: bool) -> None:
    """kernel/stride/pad as ``what: v``, ``what: h what: w`` (conv only) or ``what_h/what_w``."""
    h, w = hw
    style = draw(st.sampled_from(["single", "hw", "pair"] if allow_repeated_pair else ["single", "hw"]))
    if h == w and style == "single":
        field_ = getattr(p, what if what != "kernel" else "kernel_size")
        if allow_repeated_pair:
            field_.append(h)
        else:
            setattr(p, what if what != "kernel" else "kernel_size", h)
    elif style == "pair" and allow_repeated_pair:
        getattr(p, what if what != "kernel" else "kernel_size").extend([h, w])
    else:
        setattr(p, f"{what}_h", h)
        setattr(p, f"{what}_w", w)


class _Builder:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.net = caffe_pb2.NetParameter(name=draw(st.sampled_from(["fuzz", "fuzz net", "n\u00e9t"])))
        self.blobs: list[Blob] = []
        self.weights: list[tuple[str, str, list[np.ndarray]]] = []
        self.inputs: dict[str, Shape] = {}
        self.counter = 0
        self.touches_batch = False

    # ---------------------------------------------------------------- helpers
    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def layer(self, ltype: str, bottoms: list[Blob], n_top: int = 1, *, in_place: bool = False
              ) -> tuple[caffe_pb2.LayerParameter, list[str]]:
        p = self.net.layer.add()
        p.name = self.fresh(ltype.lower() + "_")
        p.type = ltype
        p.bottom.extend(b.name for b in bottoms)
        tops = [bottoms[0].name] if in_place else [self.fresh("b") for _ in range(n_top)]
        p.top.extend(tops)
        return p, tops

    def add_blob(self, name: str, shape: Shape, **kw) -> Blob:
        b = Blob(name, tuple(int(d) for d in shape), **kw)
        self.blobs.append(b)
        return b

    def replace(self, old: Blob, shape: Shape, **kw) -> Blob:
        """An in-place layer's top: the same name now holds the new value."""
        self.blobs.remove(old)
        return self.add_blob(old.name, shape, **kw)

    def pick(self, *, rank: int | None = None, min_rank: int = 1) -> Blob | None:
        cands = [b for b in self.blobs if not b.index and len(b.shape) >= min_rank
                 and (rank is None or len(b.shape) == rank)]
        if not cands:
            return None
        # prefer the most recent blobs: deeper nets
        return self.draw(st.sampled_from(cands[::-1][:4] if self.draw(st.booleans()) else cands))

    def axis_arg(self, a: int, rank: int) -> int:
        """Axis ``a`` as written: positive, or the equivalent negative one."""
        return a - rank if self.draw(st.integers(0, 3)) == 0 else a

    def first_axis(self, rank: int, lo: int = 1) -> int:
        """An axis; the batch axis 0 only rarely (Keras cannot work across it)."""
        a = self.draw(st.integers(0, rank - 1)) if self.draw(st.integers(0, 19)) == 0 else \
            self.draw(st.integers(min(lo, rank - 1), rank - 1))
        if a == 0:
            self.touches_batch = True
        return a

    # ---------------------------------------------------------------- inputs
    def add_input(self) -> None:
        d = self.draw
        rank = d(st.sampled_from([4, 4, 4, 4, 2, 3]))
        n = d(st.integers(1, 2))
        if rank == 4:
            shape: Shape = (n, d(st.integers(1, 6)), d(st.integers(1, 12)), d(st.integers(1, 12)))
        elif rank == 3:
            shape = (n, d(st.integers(1, 6)), d(st.integers(1, 12)))
        else:
            shape = (n, d(st.integers(1, 12)))
        name = d(st.sampled_from(["data", "in put", "x"])) if not self.inputs else self.fresh("data")
        if name in self.inputs:
            name = self.fresh("data")
        style = d(st.sampled_from(["layer", "layer", "input_shape", "input_dim"])) if rank == 4 else \
            d(st.sampled_from(["layer", "input_shape"]))
        if style == "input_dim" and not self.net.input_shape and not any(l.type == "Input" for l in self.net.layer):
            self.net.input.append(name)
            self.net.input_dim.extend(shape)
        elif style == "input_shape" and not self.net.input_dim and not any(l.type == "Input" for l in self.net.layer):
            self.net.input.append(name)
            self.net.input_shape.add().dim.extend(shape)
        else:
            p = self.net.layer.add()
            p.name = self.fresh("input_")
            p.type = "Input"
            p.top.append(name)
            p.input_param.shape.add().dim.extend(shape)
        self.inputs[name] = shape
        self.add_blob(name, shape)

    # ---------------------------------------------------------------- layers
    def add_layer(self) -> bool:
        ltype = self.draw(st.sampled_from(LAYER_TYPES))
        return bool(getattr(self, "_" + ltype.lower())(ltype))

    def _elementwise(self, ltype: str, blob: Blob, *, nonneg: bool = False, n_top_ok: bool = True
                     ) -> tuple[caffe_pb2.LayerParameter, Blob]:
        in_place = self.draw(st.booleans())
        p, tops = self.layer(ltype, [blob], in_place=in_place)
        out = self.replace(blob, blob.shape, nonneg=nonneg) if in_place else self.add_blob(tops[0], blob.shape,
                                                                                            nonneg=nonneg)
        return p, out

    def _relu(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        slope = self.draw(st.sampled_from([0.0, 0.0, 0.1, -0.5, 2.0]))
        p, _ = self._elementwise(t, b, nonneg=slope == 0.0)
        if slope or self.draw(st.booleans()):
            p.relu_param.negative_slope = slope
        return True

    def _elu(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        p, _ = self._elementwise(t, b)
        if self.draw(st.booleans()):
            p.elu_param.alpha = _f32(self.draw, 0.0, 3.0)
        return True

    def _simple(self, t: str, nonneg: bool) -> bool:
        b = self.pick()
        if b is None:
            return False
        self._elementwise(t, b, nonneg=nonneg)
        return True

    def _sigmoid(self, t: str) -> bool:
        return self._simple(t, True)

    def _tanh(self, t: str) -> bool:
        return self._simple(t, False)

    def _absval(self, t: str) -> bool:
        return self._simple(t, True)

    def _bnll(self, t: str) -> bool:
        return self._simple(t, True)

    def _power(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        powers = [0.0, 1.0, 2.0, 3.0] + ([0.5, 1.5, -1.0] if b.nonneg else [])
        power = d(st.sampled_from(powers))
        scale = _f32(d, 0.25, 2.0) if power < 0 or (power % 1 and b.nonneg) else _f32(d, -2.0, 2.0)
        shift = _f32(d, 0.5, 2.0) if power < 0 or power % 1 else _f32(d, -1.0, 1.0)
        p, _ = self._elementwise(t, b, nonneg=power in (0.0, 2.0) or (b.nonneg and power % 1 != 0))
        for name, value, default in (("power", power, 1.0), ("scale", scale, 1.0), ("shift", shift, 0.0)):
            if value != default or d(st.booleans()):
                setattr(p.power_param, name, value)
        return True

    def _exp(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        p, _ = self._elementwise(t, b, nonneg=True)
        base = d(st.sampled_from([-1.0, -1.0, 2.0, 0.5, 10.0]))
        if base != -1.0 or d(st.booleans()):
            p.exp_param.base = base
        if d(st.booleans()):
            p.exp_param.scale = _f32(d, -1.5, 1.5)
        if d(st.booleans()):
            p.exp_param.shift = _f32(d, -1.0, 1.0)
        return True

    def _log(self, t: str) -> bool:
        cands = [b for b in self.blobs if b.nonneg and not b.index]
        if not cands:
            return False
        b = self.draw(st.sampled_from(cands))
        d = self.draw
        p, _ = self._elementwise(t, b)
        base = d(st.sampled_from([-1.0, 2.0, 10.0, 0.5]))
        if base != -1.0:
            p.log_param.base = base
        p.log_param.scale = _f32(d, 0.25, 2.0)
        p.log_param.shift = _f32(d, 0.5, 2.0)
        return True

    def _threshold(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        p, _ = self._elementwise(t, b, nonneg=True)
        if self.draw(st.booleans()):
            p.threshold_param.threshold = self.draw(st.sampled_from([0.0, 0.25, -0.5]))
        return True

    def _dropout(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        p, _ = self._elementwise(t, b, nonneg=b.nonneg)
        if self.draw(st.booleans()):
            p.dropout_param.dropout_ratio = self.draw(st.sampled_from([0.0, 0.25, 0.5, 0.9]))
        if self.draw(st.booleans()):
            p.dropout_param.scale_train = self.draw(st.booleans())
        return True

    def _clip(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        lo = _f32(self.draw, -1.0, 0.5)
        hi = lo + _f32(self.draw, 0.0, 1.0)
        p, _ = self._elementwise(t, b, nonneg=lo >= 0)
        p.clip_param.min = lo
        p.clip_param.max = hi
        return True

    def _swish(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        p, _ = self._elementwise(t, b)
        if self.draw(st.booleans()):
            p.swish_param.beta = _f32(self.draw, -2.0, 3.0)
        return True

    def _relu6(self, t: str) -> bool:
        return self._simple(t, True)

    def _prelu(self, t: str) -> bool:
        b = self.pick(min_rank=2)
        if b is None:
            return False
        p, _ = self._elementwise(t, b)
        shared = self.draw(st.booleans())
        if shared or self.draw(st.booleans()):
            p.prelu_param.channel_shared = shared
        self.weights.append((p.name, t, [_array(self.draw, (1,) if shared else (b.shape[1],))]))
        return True

    def _batchnorm(self, t: str) -> bool:
        b = self.pick(min_rank=2)
        if b is None:
            return False
        d = self.draw
        c = b.shape[1]
        p, _ = self._elementwise(t, b)
        if d(st.booleans()):
            p.batch_norm_param.eps = d(st.sampled_from([1e-5, 1e-3, 0.1]))
        if d(st.booleans()):
            p.batch_norm_param.use_global_stats = True
        factor = d(st.sampled_from([1.0, 1.0, 0.0, 999.98, 0.5]))
        mean = _array(d, (c,)) * np.float32(max(factor, 1.0))
        var = _array(d, (c,), lo=0.1, hi=2.0) * np.float32(max(factor, 1.0))
        self.weights.append((p.name, t, [mean, var, np.array([factor], np.float32)]))
        return True

    def _bn(self, t: str) -> bool:
        b = self.pick(rank=4)
        if b is None:
            return False
        d = self.draw
        c = b.shape[1]
        p, _ = self._elementwise(t, b)
        p.bn_param.eps = d(st.sampled_from([1e-5, 1e-3, 0.1]))
        stored = (1, c, 1, 1) if d(st.booleans()) else (c,)
        blobs = [_array(d, stored, lo=0.5, hi=1.5), _array(d, stored), _array(d, stored),
                 _array(d, stored, lo=0.1, hi=2.0)]
        self.weights.append((p.name, t, blobs))
        return True

    def _axis_span(self, x: Shape) -> tuple[int, int]:
        """(axis, num_axes) for Scale/Bias: any sub-span, the channel axis most often."""
        d = self.draw
        rank = len(x)
        if d(st.integers(0, 2)) and rank >= 2:
            return 1, 1
        a = self.first_axis(rank)
        n = d(st.integers(-1, rank - a))
        return a, n

    def _second_bottom_for(self, x: Blob) -> tuple[Blob, int] | None:
        """A blob whose shape equals ``x.shape[a : a + len]`` for some axis a (Scale/Bias 2nd bottom)."""
        options = []
        for b in self.blobs:
            if b.index or not b.shape:
                continue
            k = len(b.shape)
            for a in range(len(x.shape) - k + 1):
                if tuple(x.shape[a:a + k]) == b.shape:
                    options.append((b, a))
        return self.draw(st.sampled_from(options)) if options else None

    def _scale_or_bias(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        sub = "scale_param" if t == "Scale" else "bias_param"
        if d(st.integers(0, 3)) == 0 and (second := self._second_bottom_for(b)) is not None:
            other, a = second
            if a == 0:
                self.touches_batch = True
            p, tops = self.layer(t, [b, other])
            if a != 1 or d(st.booleans()):
                getattr(p, sub).axis = self.axis_arg(a, len(b.shape))
            self.add_blob(tops[0], b.shape)
            if t == "Scale" and d(st.booleans()):
                p.scale_param.bias_term = True
                self.weights.append((p.name, t, [_array(d, other.shape)]))
            return True
        a, n = self._axis_span(b.shape)
        p, out = self._elementwise(t, b)
        if a != 1 or d(st.booleans()):
            getattr(p, sub).axis = self.axis_arg(a, len(b.shape))
        if n != 1 or d(st.booleans()):
            getattr(p, sub).num_axes = n
        pshape = tuple(b.shape[a:] if n == -1 else b.shape[a:a + n])
        blobs = [_array(d, pshape, lo=-2.0, hi=2.0)]
        if t == "Scale" and d(st.booleans()):
            p.scale_param.bias_term = True
            blobs.append(_array(d, pshape))
        self.weights.append((p.name, t, blobs))
        return True

    def _scale(self, t: str) -> bool:
        return self._scale_or_bias(t)

    def _bias(self, t: str) -> bool:
        return self._scale_or_bias(t)

    # ---- windows
    def _conv_like(self, t: str) -> bool:
        b = self.pick(rank=4)
        if b is None:
            return False
        d = self.draw
        n, c, h, w = b.shape
        g = d(st.sampled_from(_divisors(c)))
        o = g * d(st.integers(1, max(1, 6 // g)))
        dil = (d(st.integers(1, 2)), d(st.integers(1, 2))) if d(st.integers(0, 3)) == 0 else (1, 1)
        pad = (d(st.integers(0, 2)), d(st.integers(0, 2))) if d(st.booleans()) else (0, 0)
        stride = (d(st.integers(1, 3)), d(st.integers(1, 3))) if d(st.booleans()) else (1, 1)
        kernel = []
        for size, pd, dl in zip((h, w), pad, dil):
            kmax = (size + 2 * pd - 1) // dl + 1 if t == "Convolution" else 4
            kernel.append(d(st.integers(1, max(1, min(4, kmax)))))
        ext = [dl * (k - 1) + 1 for k, dl in zip(kernel, dil)]
        if t == "Convolution":
            if any(e > s + 2 * pd for e, s, pd in zip(ext, (h, w), pad)):
                return False
            out = [(s + 2 * pd - e) // st_ + 1 for s, pd, e, st_ in zip((h, w), pad, ext, stride)]
        else:
            out = [st_ * (s - 1) + e - 2 * pd for s, pd, e, st_ in zip((h, w), pad, ext, stride)]
            if min(out) <= 0 or max(out) > 40:
                return False
        p, tops = self.layer(t, [b])
        cp = p.convolution_param
        cp.num_output = o
        if g != 1 or d(st.booleans()):
            cp.group = g
        _set_spatial(d, cp, "kernel", tuple(kernel), allow_repeated_pair=True)
        if pad != (0, 0) or d(st.booleans()):
            _set_spatial(d, cp, "pad", pad, allow_repeated_pair=True)
        if stride != (1, 1) or d(st.booleans()):
            _set_spatial(d, cp, "stride", stride, allow_repeated_pair=True)
        if dil != (1, 1):
            cp.dilation.extend([dil[0]] if dil[0] == dil[1] else list(dil))
        bias = d(st.booleans())
        if not bias:
            cp.bias_term = False
        wshape = (o, c // g, *kernel) if t == "Convolution" else (c, o // g, *kernel)
        blobs = [_array(d, wshape)] + ([_array(d, (o,))] if bias else [])
        self.weights.append((p.name, t, blobs))
        self.add_blob(tops[0], (n, o, out[0], out[1]))
        return True

    def _convolution(self, t: str) -> bool:
        return self._conv_like(t)

    def _deconvolution(self, t: str) -> bool:
        return self._conv_like(t)

    def _pooling(self, t: str) -> bool:
        b = self.pick(rank=4)
        if b is None:
            return False
        d = self.draw
        n, c, h, w = b.shape
        p, tops = self.layer(t, [b])
        pp = p.pooling_param
        method = d(st.sampled_from([PP.MAX, PP.AVE]))
        if method != PP.MAX or d(st.booleans()):
            pp.pool = method
        if d(st.integers(0, 4)) == 0:
            pp.global_pooling = True
            self.add_blob(tops[0], (n, c, 1, 1))
            return True
        kernel = (d(st.integers(1, min(5, h + 2))), d(st.integers(1, min(5, w + 2))))
        pad = tuple(d(st.integers(0, k - 1)) if d(st.booleans()) else 0 for k in kernel)
        if any(k > s + 2 * pd for k, s, pd in zip(kernel, (h, w), pad)):
            pad = tuple(max(pd, (k - s + 1) // 2) for k, s, pd in zip(kernel, (h, w), pad))
            if any(pd >= k for pd, k in zip(pad, kernel)) or any(k > s + 2 * pd for k, s, pd in zip(kernel, (h, w), pad)):
                self.net.layer.pop()
                return False
        stride = (d(st.integers(1, 3)), d(st.integers(1, 3))) if d(st.booleans()) else (1, 1)
        _set_spatial(d, pp, "kernel", kernel, allow_repeated_pair=False)
        if pad != (0, 0) or d(st.booleans()):
            _set_spatial(d, pp, "pad", pad, allow_repeated_pair=False)
        if stride != (1, 1) or d(st.booleans()):
            _set_spatial(d, pp, "stride", stride, allow_repeated_pair=False)
        rounding = d(st.sampled_from(["default", "ceil", "floor", "ceil_mode_false"]))
        if rounding == "ceil":
            pp.round_mode = PP.CEIL
        elif rounding == "floor":
            pp.round_mode = PP.FLOOR
        elif rounding == "ceil_mode_false":
            pp.ceil_mode = False
        ceil = rounding in ("default", "ceil")
        out = []
        for s, k, sd, pd in zip((h, w), kernel, stride, pad):
            o = (-(-(s + 2 * pd - k) // sd) if ceil else (s + 2 * pd - k) // sd) + 1
            if any(pad) and (o - 1) * sd >= s + pd:  # Caffe checks both axes if either is padded
                o -= 1
            out.append(o)
        if min(out) <= 0:
            self.net.layer.pop()
            return False
        self.add_blob(tops[0], (n, c, out[0], out[1]))
        return True

    def _innerproduct(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x)) if len(x) > 1 else 0
        if a == 0:
            self.touches_batch = True
        k = math.prod(x[a:])
        if k > 2000:
            return False
        num = d(st.integers(1, 6))
        p, tops = self.layer(t, [b])
        ip = p.inner_product_param
        ip.num_output = num
        if a != 1 or d(st.booleans()):
            ip.axis = self.axis_arg(a, len(x))
        transpose = d(st.booleans())
        if transpose or d(st.booleans()):
            ip.transpose = transpose
        bias = d(st.booleans())
        if not bias:
            ip.bias_term = False
        blobs = [_array(d, (k, num) if transpose else (num, k))] + ([_array(d, (num,))] if bias else [])
        self.weights.append((p.name, t, blobs))
        self.add_blob(tops[0], tuple(x[:a]) + (num,))
        return True

    # ---- structure
    def _same_shape(self, x: Blob) -> list[Blob]:
        return [b for b in self.blobs if b.shape == x.shape and not b.index]

    def _eltwise(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        others = self._same_shape(b)
        k = d(st.integers(2, 3))
        bottoms = [b] + [d(st.sampled_from(others)) for _ in range(k - 1)]
        p, tops = self.layer(t, bottoms)
        op = d(st.sampled_from([EP.SUM, EP.PROD, EP.MAX]))
        if op != EP.SUM or d(st.booleans()):
            p.eltwise_param.operation = op
        if op == EP.SUM and d(st.booleans()):
            p.eltwise_param.coeff.extend([d(st.sampled_from([1.0, -1.0, 0.5, 0.0, 2.5])) for _ in bottoms])
        nonneg = all(x.nonneg for x in bottoms) and not p.eltwise_param.coeff
        self.add_blob(tops[0], b.shape, nonneg=nonneg)
        return True

    def _concat(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x))
        others = [o for o in self.blobs if not o.index and len(o.shape) == len(x)
                  and all(o.shape[i] == x[i] for i in range(len(x)) if i != a)]
        bottoms = [b] + [d(st.sampled_from(others)) for _ in range(d(st.integers(0, 2)))]
        d(st.randoms(use_true_random=False)).shuffle(bottoms)
        p, tops = self.layer(t, bottoms)
        if a != 1 or d(st.booleans()):
            if d(st.integers(0, 3)) == 0:
                p.concat_param.concat_dim = a
            else:
                p.concat_param.axis = self.axis_arg(a, len(x))
        out = list(x)
        out[a] = sum(o.shape[a] for o in bottoms)
        self.add_blob(tops[0], tuple(out), nonneg=all(o.nonneg for o in bottoms))
        return True

    def _slice(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x))
        size = x[a]
        if d(st.booleans()) and size > 1:
            points = sorted(d(st.sets(st.integers(1, size - 1), min_size=1, max_size=min(3, size - 1))))
            bounds = [0] + points + [size]
        else:
            k = d(st.sampled_from([m for m in _divisors(size) if m <= 4]))
            points = []
            bounds = [i * size // k for i in range(k + 1)]
        p, tops = self.layer(t, [b], n_top=len(bounds) - 1)
        if a != 1 or d(st.booleans()):
            if d(st.integers(0, 3)) == 0:
                p.slice_param.slice_dim = a
            else:
                p.slice_param.axis = self.axis_arg(a, len(x))
        p.slice_param.slice_point.extend(points)
        for top, lo, hi in zip(tops, bounds[:-1], bounds[1:]):
            s = list(x)
            s[a] = hi - lo
            self.add_blob(top, tuple(s), nonneg=b.nonneg)
        return True

    def _split(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        p, tops = self.layer(t, [b], n_top=self.draw(st.integers(1, 3)))
        for top in tops:
            self.add_blob(top, b.shape, nonneg=b.nonneg)
        return True

    def _flatten(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x))
        e = d(st.integers(a, len(x) - 1))
        p, tops = self.layer(t, [b])
        if a != 1 or d(st.booleans()):
            p.flatten_param.axis = self.axis_arg(a, len(x))
        if e != len(x) - 1 or d(st.booleans()):
            p.flatten_param.end_axis = self.axis_arg(e, len(x))
        self.add_blob(tops[0], tuple(x[:a]) + (math.prod(x[a:e + 1]),) + tuple(x[e + 1:]), nonneg=b.nonneg)
        return True

    def _reshape(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        rank = len(x)
        start = d(st.integers(1, rank)) if d(st.integers(0, 9)) else d(st.integers(0, rank))
        end = d(st.integers(start, rank))
        if start == 0:
            self.touches_batch = True
        span = math.prod(x[start:end])
        # factor the span into 0-3 dims (an empty span takes dims of 1 only)
        dims: list[int] = []
        rest = span
        for _ in range(d(st.integers(0 if span == 1 else 1, 3))):
            f = d(st.sampled_from(_divisors(rest)))
            dims.append(f)
            rest //= f
        if rest != 1:
            if not dims:
                dims.append(rest)
            else:
                dims[-1] *= rest
        if len(x[:start]) + len(dims) + len(x[end:]) > 6:
            return False
        written = list(dims)
        for i, v in enumerate(dims):  # 0 copies the input dim at the same position
            if start + i < end and x[start + i] == v and d(st.booleans()):
                written[i] = 0
        if written and d(st.booleans()):
            written[d(st.integers(0, len(written) - 1))] = -1
        p, tops = self.layer(t, [b])
        p.reshape_param.shape.dim.extend(written)
        if start != 0 or d(st.booleans()):
            p.reshape_param.axis = start if d(st.booleans()) else start - (rank + 1)
        if end != rank or d(st.booleans()):
            p.reshape_param.num_axes = end - start if end != rank or d(st.booleans()) else -1
        self.add_blob(tops[0], tuple(x[:start]) + tuple(dims) + tuple(x[end:]), nonneg=b.nonneg)
        return True

    def _crop(self, t: str) -> bool:
        d = self.draw
        pairs = []
        for x in self.blobs:
            for r in self.blobs:
                if x.index or r.index or len(x.shape) != len(r.shape):
                    continue
                for a in range(len(x.shape)):
                    if all(r.shape[i] <= x.shape[i] for i in range(a, len(x.shape))):
                        pairs.append((x, r, a))
        pairs = [pr for pr in pairs if pr[2] >= 1 or d(st.integers(0, 9)) == 0]
        if not pairs:
            return False
        x, r, a = d(st.sampled_from(pairs))
        if a == 0:
            self.touches_batch = True
        n = len(x.shape) - a
        room = [x.shape[a + i] - r.shape[a + i] for i in range(n)]
        p, tops = self.layer(t, [x, r])
        if a != 2 or d(st.booleans()):
            p.crop_param.axis = self.axis_arg(a, len(x.shape))
        style = d(st.sampled_from(["none", "one", "each"]))
        if style == "one" and min(room) >= 0:
            p.crop_param.offset.append(d(st.integers(0, min(room))))
        elif style == "each":
            p.crop_param.offset.extend(d(st.integers(0, m)) for m in room)
        out = tuple(x.shape[:a]) + tuple(r.shape[a:])
        self.add_blob(tops[0], out, nonneg=x.nonneg)
        return True

    def _interp(self, t: str) -> bool:
        b = self.pick(rank=4)
        if b is None:
            return False
        d = self.draw
        n, c, h, w = b.shape
        mode = d(st.sampled_from(["zoom", "shrink", "size", "both", "bottom"]))
        if mode == "bottom":
            refs = [r for r in self.blobs if len(r.shape) == 4 and not r.index]
            ref = d(st.sampled_from(refs))
            p, tops = self.layer(t, [b, ref])
            self.add_blob(tops[0], (n, c, ref.shape[2], ref.shape[3]))
            return True
        pb = d(st.sampled_from([0, 0, -1])) if h > 2 and w > 2 else 0
        pe = d(st.sampled_from([0, 0, -1])) if h > 2 and w > 2 else 0
        he, we = h + pb + pe, w + pb + pe
        p, tops = self.layer(t, [b])
        ip = p.interp_param
        if pb or d(st.integers(0, 3)) == 0:
            ip.pad_beg = pb
        if pe or d(st.integers(0, 3)) == 0:
            ip.pad_end = pe
        z, s = d(st.integers(1, 3)), d(st.integers(1, 3))
        if mode == "zoom":
            ip.zoom_factor = z
            out = (he + (he - 1) * (z - 1), we + (we - 1) * (z - 1))
        elif mode == "shrink":
            ip.shrink_factor = s
            out = ((he - 1) // s + 1, (we - 1) // s + 1)
        elif mode == "both":
            ip.zoom_factor, ip.shrink_factor = z, s
            ho, wo = (he - 1) // s + 1, (we - 1) // s + 1
            out = (ho + (ho - 1) * (z - 1), wo + (wo - 1) * (z - 1))
        else:
            out = (d(st.integers(1, 16)), d(st.integers(1, 16)))
            ip.height, ip.width = out
        self.add_blob(tops[0], (n, c, *out))
        return True

    def _argmax(self, t: str) -> bool:
        b = self.pick()
        if b is None:
            return False
        d = self.draw
        x = b.shape
        p, tops = self.layer(t, [b])
        ap = p.argmax_param
        out_max = d(st.booleans())
        if out_max or d(st.booleans()):
            ap.out_max_val = out_max
        if d(st.booleans()):
            a = self.first_axis(len(x))
            ap.axis = self.axis_arg(a, len(x))
            k = d(st.integers(1, min(3, x[a])))
            out = list(x)
            out[a] = k
        else:
            k = d(st.integers(1, min(3, math.prod(x[1:]))))
            out = [1] * max(len(x), 3)
            out[0], out[2] = x[0], k
            if out_max:
                out[1] = 2
        if k != 1 or d(st.booleans()):
            ap.top_k = k
        self.add_blob(tops[0], tuple(out), index=True)  # indices (ties): terminal
        return True

    def _reduction(self, t: str) -> bool:
        b = self.pick(min_rank=2)
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x))
        p, tops = self.layer(t, [b])
        rp = p.reduction_param
        op = d(st.sampled_from([RP.SUM, RP.ASUM, RP.SUMSQ, RP.MEAN]))
        if op != RP.SUM or d(st.booleans()):
            rp.operation = op
        if a != 0 or d(st.booleans()):
            rp.axis = self.axis_arg(a, len(x))
        if d(st.booleans()):
            rp.coeff = d(st.sampled_from([1.0, -1.0, 0.5, 3.0]))
        if a == 0:
            self.touches_batch = True
        self.add_blob(tops[0], tuple(x[:a]))
        return True

    def _softmax(self, t: str) -> bool:
        b = self.pick(min_rank=2)
        if b is None:
            return False
        d = self.draw
        x = b.shape
        a = self.first_axis(len(x))
        p, out = self._elementwise(t, b, nonneg=True)
        if a != 1 or d(st.booleans()):
            p.softmax_param.axis = self.axis_arg(a, len(x))
        return True

    def _lrn(self, t: str) -> bool:
        b = self.pick(rank=4)
        if b is None:
            return False
        d = self.draw
        p, _ = self._elementwise(t, b)
        lp = p.lrn_param
        if d(st.booleans()):
            lp.local_size = d(st.sampled_from([1, 3, 5]))
        if d(st.booleans()):
            lp.alpha = _f32(d, 0.0, 2.0)
        if d(st.booleans()):
            lp.beta = _f32(d, 0.25, 1.0)
        if d(st.booleans()):
            lp.k = _f32(d, 0.5, 2.0)
        if d(st.booleans()):
            lp.norm_region = d(st.sampled_from([LP.ACROSS_CHANNELS, LP.WITHIN_CHANNEL]))
        return True

    def _mvn(self, t: str) -> bool:
        b = self.pick(min_rank=3)
        if b is None:
            return False
        d = self.draw
        p, _ = self._elementwise(t, b)
        mp = p.mvn_param
        if d(st.booleans()):
            mp.normalize_variance = d(st.booleans())
        if d(st.booleans()):
            mp.across_channels = d(st.booleans())
        if d(st.booleans()):
            mp.eps = d(st.sampled_from([1e-9, 1e-3, 0.5]))
        return True


@st.composite
def nets(draw: st.DrawFn, max_layers: int = 6) -> GeneratedNet:
    """A small valid net: 1-2 inputs, 1..max_layers layers of the generated types."""
    b = _Builder(draw)
    b.add_input()
    if draw(st.integers(0, 4)) == 0:
        b.add_input()
    target = draw(st.integers(1, max_layers))
    added, tries = 0, 0
    while added < target and tries < 4 * max_layers:
        tries += 1
        before = len(b.net.layer)
        if b.add_layer():
            added += 1
        else:
            del b.net.layer[before:]
    if added == 0:  # at least one layer
        b._relu("ReLU")
    flavour = draw(st.sampled_from([{}, {}, {"packed": False}, {"double": True}, {"legacy_shape": True}]))
    if flavour.get("legacy_shape") and any(len(np.shape(a)) > 4 for _, _, bl in b.weights for a in bl):
        flavour = {}
    return GeneratedNet(b.net, b.weights, b.inputs, b.touches_batch, flavour)
