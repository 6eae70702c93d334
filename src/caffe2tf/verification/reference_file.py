"""Read and write reference-activation files (``caffe-reference/1``, HDF5).

The format is the one of ``../shared/caffe_reference/README.md``::

    /                   attrs: format="caffe-reference/1", case, generator,
                               layout="NCHW", num_layers
    /inputs/<k>         full NCHW float32 input k; attr ``blob`` = blob name
    /layers/<NNNN>      one group per layer in execution order; attrs ``name``,
                        ``type``, ``bottoms``/``tops`` (JSON lists of blob names)
        top<t>          either the full NCHW float32 output, or (outputs over
                        262,144 elements) a group with ``index`` (int64, flat
                        row-major), ``value`` (float32), attrs ``shape``,
                        ``mean``, ``std``, ``min``, ``max``, ``abs_max``, ``l2``
                        and, for 4-D outputs with C > 1, ``argmax_axis1``
                        (int32, N x H x W).

Malformed files raise :class:`ReferenceFileError` with a one-line message
naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from caffe2tf.errors import ReferenceFileError
from caffe2tf.verification import dump_reference as dump
from caffe2tf.verification.dump_reference import FORMAT, output_stats
STAT_NAMES = ("mean", "std", "min", "max", "abs_max", "l2")

__all__ = [
    "FORMAT", "ReferenceFileError", "RecordedOutput", "RecordedLayer", "ReferenceFile",
    "read_reference", "write_reference", "output_stats",
]


@dataclass
class RecordedOutput:
    """One recorded top: the full array, or samples plus statistics.

    Attributes:
        shape: the NCHW shape of the full output.
        array: the full float32 array (``None`` when sampled).
        index: flat row-major indices of the samples (``None`` when full).
        value: recorded values at ``index`` (``None`` when full).
        stats: ``mean``, ``std``, ``min``, ``max``, ``abs_max``, ``l2`` of the
            full array (always filled; computed for full outputs).
        argmax_axis1: channel argmax per pixel (N x H x W), recorded for
            sampled 4-D multi-channel outputs, else ``None``.
    """

    shape: tuple[int, ...]
    array: np.ndarray | None = None
    index: np.ndarray | None = None
    value: np.ndarray | None = None
    stats: dict[str, float] = field(default_factory=dict)
    argmax_axis1: np.ndarray | None = None

    @property
    def is_sampled(self) -> bool:
        """True when only samples (``index``/``value``) were recorded."""
        return self.array is None

    @property
    def abs_max(self) -> float:
        """max|output| of the full array (from the array or the recorded stat)."""
        if self.array is not None:
            return float(np.max(np.abs(self.array))) if self.array.size else 0.0
        return float(self.stats["abs_max"])


@dataclass
class RecordedLayer:
    """One layer as the reference ran it, with its outputs (one per top)."""

    index: int
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    outputs: list[RecordedOutput]


@dataclass
class ReferenceFile:
    """A whole reference file.

    Attributes:
        case: case name (root attribute ``case``).
        attrs: all root attributes (plain Python values).
        inputs: blob name -> full NCHW float32 input, in the net's input order.
        layers: recorded layers in execution order.
    """

    case: str
    attrs: dict[str, Any]
    inputs: dict[str, np.ndarray]
    layers: list[RecordedLayer]

    def layer(self, name: str) -> RecordedLayer:
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _read_output(node: h5py.Dataset | h5py.Group, where: str) -> RecordedOutput:
    if isinstance(node, h5py.Dataset):
        arr = np.asarray(node[()], dtype=np.float32)
        return RecordedOutput(shape=tuple(int(d) for d in arr.shape), array=arr,
                              stats=output_stats(arr))
    for key in ("index", "value"):
        if key not in node:
            raise ValueError(f"{where}: sampled output has no '{key}' dataset")
    if "shape" not in node.attrs:
        raise ValueError(f"{where}: sampled output has no 'shape' attribute")
    shape = tuple(int(d) for d in np.asarray(node.attrs["shape"]).ravel())
    index = np.asarray(node["index"][()], dtype=np.int64).ravel()
    value = np.asarray(node["value"][()], dtype=np.float32).ravel()
    if index.shape != value.shape:
        raise ValueError(f"{where}: index and value differ in length")
    size = int(np.prod(shape)) if shape else 1
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(f"{where}: sample index out of range for shape {shape}")
    missing = [k for k in STAT_NAMES if k not in node.attrs]
    if "abs_max" in missing:
        raise ValueError(f"{where}: sampled output has no 'abs_max' attribute")
    stats = {k: float(node.attrs[k]) for k in STAT_NAMES if k in node.attrs}
    argmax = None
    if "argmax_axis1" in node:
        argmax = np.asarray(node["argmax_axis1"][()], dtype=np.int64)
        if len(shape) != 4 or argmax.shape != (shape[0],) + shape[2:]:
            raise ValueError(f"{where}: argmax_axis1 shape {argmax.shape} does not fit {shape}")
    return RecordedOutput(shape=shape, index=index, value=value, stats=stats,
                          argmax_axis1=argmax)


def _json_list(attrs: h5py.AttributeManager, key: str, where: str) -> list[str]:
    if key not in attrs:
        raise ValueError(f"{where}: missing attribute '{key}'")
    items = json.loads(_plain(attrs[key]))
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ValueError(f"{where}: attribute '{key}' is not a JSON list of names")
    return items


def _read(f: h5py.File) -> ReferenceFile:
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        raise ValueError(f"format is {attrs.get('format')!r}, expected {FORMAT!r}")
    if attrs.get("layout", "NCHW") != "NCHW":
        raise ValueError(f"layout is {attrs.get('layout')!r}, expected 'NCHW'")
    if "inputs" not in f or "layers" not in f:
        raise ValueError("missing /inputs or /layers group")
    inputs: dict[str, np.ndarray] = {}
    for key in sorted(f["inputs"], key=int):
        ds = f["inputs"][key]
        if not isinstance(ds, h5py.Dataset) or "blob" not in ds.attrs:
            raise ValueError(f"/inputs/{key}: expected a dataset with a 'blob' attribute")
        inputs[str(_plain(ds.attrs["blob"]))] = np.asarray(ds[()], dtype=np.float32)
    layers: list[RecordedLayer] = []
    for key in sorted(f["layers"], key=int):
        g = f["layers"][key]
        where = f"/layers/{key}"
        if not isinstance(g, h5py.Group):
            raise ValueError(f"{where}: expected a group")
        for a in ("name", "type"):
            if a not in g.attrs:
                raise ValueError(f"{where}: missing attribute '{a}'")
        tops = _json_list(g.attrs, "tops", where)
        outputs = []
        for t in range(len(tops)):
            if f"top{t}" not in g:
                raise ValueError(f"{where}: missing top{t}")
            outputs.append(_read_output(g[f"top{t}"], f"{where}/top{t}"))
        layers.append(RecordedLayer(index=int(key), name=str(_plain(g.attrs["name"])),
                                    type=str(_plain(g.attrs["type"])),
                                    bottoms=_json_list(g.attrs, "bottoms", where),
                                    tops=tops, outputs=outputs))
    case = str(attrs.get("case", ""))
    return ReferenceFile(case=case, attrs=attrs, inputs=inputs, layers=layers)


def read_reference(path: str | Path) -> ReferenceFile:
    """Read a ``caffe-reference/1`` file.

    Raises:
        ReferenceFileError: the file is missing, not HDF5, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError("reference file not found", file=str(path))
    try:
        with h5py.File(path, "r") as f:
            return _read(f)
    except ReferenceFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ReferenceFileError(f"malformed reference file: {exc}", file=str(path)) from exc


def write_reference(path: str | Path, *, case: str, inputs: dict[str, np.ndarray],
                    layers: Sequence[tuple[str, str, Sequence[str], Sequence[str],
                                           Sequence[np.ndarray]]],
                    sample_threshold: int = 262144, num_samples: int = 4096, seed: int = 0,
                    generator: str = "caffe2tf") -> None:
    """Write a ``caffe-reference/1`` file.

    Args:
        inputs: blob name -> NCHW input, in the net's input order.
        layers: ``(name, type, bottoms, tops, outputs)`` per layer in execution
            order; ``outputs[t]`` is the NCHW array of ``tops[t]``.
        sample_threshold: outputs with more elements are stored sampled.
        num_samples: samples per sampled output (indices drawn without
            replacement from ``RandomState(seed)``, sorted).
    """

    def checked():
        for name, type_, bottoms, tops, outputs in layers:
            if len(outputs) != len(tops):
                raise ValueError(f"layer {name!r}: {len(tops)} tops but {len(outputs)} outputs")
            yield name, type_, bottoms, tops, outputs

    # the one writer of the format: dump_reference's (standalone for machines without caffe2tf)
    dump.write_reference_file(str(path), case, inputs, checked(), generator, sample_threshold=sample_threshold,
                              num_samples=num_samples, seed=seed)
