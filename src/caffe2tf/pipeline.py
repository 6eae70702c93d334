"""The conversion pipeline: read -> passes -> build Keras model -> save, atomically.

``convert()`` writes into a temporary directory beside ``out_dir`` and renames it
into place at the end, so ``out_dir`` is either complete or absent. It holds:

* ``model.keras``       — the Keras model (custom layers reload with only
  :mod:`caffe2tf.backend.layers` imported);
* ``saved_model/``      — a TensorFlow SavedModel with a ``serving_default`` signature;
* ``conversion.json``   — what was converted how (see :func:`conversion_record`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from caffe2tf import __version__
from caffe2tf.ir import Graph
from caffe2tf.errors import Caffe2TFError

log = logging.getLogger(__name__)

CONVERSION_FORMAT = "caffe2tf-conversion/1"


@dataclass
class Preprocessing:
    """How raw images become the net's input (recorded for `segment` and `serve`)."""

    mean: tuple[float, ...] | None = None  # per channel, in the net's channel order
    scale: float = 1.0
    bgr: bool = True

    def to_json(self) -> dict:
        return {"mean": list(self.mean) if self.mean is not None else None, "scale": self.scale, "bgr": self.bgr}


@dataclass
class ConversionResult:
    out_dir: Path
    record: dict
    timings: dict[str, float] = field(default_factory=dict)
    graph: Graph | None = None
    model: object | None = None
    verification: object | None = None


class OutputExistsError(Caffe2TFError):
    pass


def default_output_dir(prototxt: str | os.PathLike, net_name: str) -> Path:
    """Where ``convert`` writes when no output is named: beside the prototxt, named after
    the net (its ``name:``, else the prototxt's stem) with a ``_tf`` suffix, e.g.
    ``models/VGG_ILSVRC_16_layers_tf`` — the suffix keeps it from ever being a folder the
    user had for something else."""
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in net_name.strip()).strip("._")
    return Path(prototxt).parent / f"{stem or Path(prototxt).stem}_tf"


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _stage(timings: dict[str, float], name: str, progress: Callable[[str], None] | None) -> Iterator[None]:
    if progress:
        progress(name)
    t0 = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t0
    log.info("%s: %.2f s", name, timings[name])


def conversion_record(original: Graph, graph: Graph, build, *, input_layout: str, fold: bool,
                      prototxt: str, caffemodel: str | None, preprocessing: Preprocessing | None) -> dict:
    """The content of conversion.json: inputs, outputs, and for every Caffe layer
    output the Keras tensor that holds it (``null`` where folding removed it)."""
    v2t: Mapping[str, str] = build.value_to_tensor_name
    folded_into = {f: n.name for n in graph.nodes for f in n.folded}
    surviving = {n.name for n in graph.nodes}
    layers = []
    for node in original.nodes:
        layers.append({
            "name": node.name, "type": node.type,
            "bottoms": [original.values[v].blob for v in node.inputs],
            "tops": [original.values[v].blob for v in node.outputs],
            "values": list(node.outputs),
            "shapes": [list(original.values[v].shape or ()) for v in node.outputs],
            "keras_tensors": [v2t.get(v) for v in node.outputs],
            "keras_layers": list(build.keras_layer_for_node.get(node.name, [])) if node.name in surviving else [],
            "folded_into": folded_into.get(node.name),
        })

    def io(values: Sequence[str], layout: str) -> list[dict]:
        out = []
        for v in values:
            shape = list(original.values[v].shape or ())
            keras_shape = [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 and layout == "nhwc" else shape
            out.append({"blob": original.values[v].blob, "value": v, "caffe_shape": shape,
                        "keras_shape": keras_shape, "keras_name": v2t.get(v)})
        return out

    return {
        "format": CONVERSION_FORMAT,
        "caffe2tf_version": __version__,
        "name": original.name,
        "source": {"prototxt": str(prototxt), "caffemodel": str(caffemodel) if caffemodel else None,
                   "caffemodel_sha256": _sha256(caffemodel) if caffemodel else None},
        "input_layout": input_layout,
        "tensor_layout": "rank-4 tensors are NHWC inside the model; other ranks keep Caffe's axis order",
        "folded": fold,
        "folds": {n.name: list(n.folded) for n in graph.nodes if n.folded},
        "inputs": io(original.inputs, input_layout),
        "outputs": io(original.outputs, "nhwc"),  # --input-layout changes only the inputs
        "keras_outputs": list(getattr(build.model, "output_names", []) or []),
        "preprocessing": preprocessing.to_json() if preprocessing else None,
        "layers": layers,
    }


def convert(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None,
            out_dir: str | os.PathLike | None = None, *,
            fold: bool = True, input_layout: str = "nhwc", input_shapes: Mapping[str, Sequence[int]] | None = None,
            force: bool = False, allow_unknown_fields: bool = False, plugins: Sequence[str] = (),
            preprocessing: Preprocessing | None = None, class_names: Sequence[str] | None = None,
            save_saved_model: bool = True,
            progress: Callable[[str], None] | None = None,
            verify: Callable[[Graph, Graph, Path], object] | None = None) -> ConversionResult:
    """Convert a Caffe net to ``out_dir`` (see module docstring; ``None``: the
    :func:`default_output_dir`). Raises Caffe2TFError on bad input."""
    from caffe2tf.passes import run_passes
    from caffe2tf.frontend.reader import load_net

    def refuse_existing(out: Path) -> None:
        if out.exists() and not force:
            raise OutputExistsError("exists; pass --force to replace it", file=str(out))

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        refuse_existing(out)  # before any work when the user named it
    timings: dict[str, float] = {}
    with _stage(timings, "init", progress):  # importing TensorFlow/Keras, timed on its own
        from caffe2tf.backend.build import build_keras_model
        from caffe2tf.backend import registry

        for plugin in plugins:  # before reading: a plug-in may register shape rules too
            registry.load_plugin(plugin)
    with _stage(timings, "read", progress):
        original = load_net(prototxt, caffemodel, input_shapes=input_shapes, allow_unknown_fields=allow_unknown_fields)
    if out is None:
        out = default_output_dir(prototxt, original.name)
        refuse_existing(out)
    with _stage(timings, "fold", progress):
        graph = run_passes(original, fold=fold)
    with _stage(timings, "build", progress):
        registry.check_supported(graph)
        build = build_keras_model(graph, input_layout=input_layout, outputs="graph")
    record = conversion_record(original, graph, build, input_layout=input_layout, fold=fold,
                               prototxt=str(prototxt), caffemodel=str(caffemodel) if caffemodel else None,
                               preprocessing=preprocessing)
    if class_names is not None:
        record["class_names"] = list(class_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with _stage(timings, "save", progress):
            build.model.save(tmp / "model.keras")
            if save_saved_model:
                _export_saved_model(build.model, tmp / "saved_model")
        result = ConversionResult(out_dir=out, record=record, timings=timings, graph=graph, model=build.model)
        if verify is not None:
            with _stage(timings, "verify", progress):
                result.verification = verify(original, graph, tmp)
        record["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        (tmp / "conversion.json").write_text(json.dumps(record, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _export_saved_model(model, path: Path) -> None:
    """SavedModel with a `serving_default` signature (Keras 3 `export`)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints a summary of the endpoint
        model.export(str(path), format="tf_saved_model", verbose=False)
