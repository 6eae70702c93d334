"""The conversion pipeline: read -> passes -> build the Keras model (:func:`lower`),
then save it as a model directory, atomically (:func:`convert`).

:func:`lower` is the one path from Caffe files to a Keras model; ``convert`` and
``diff`` both use it. ``convert()`` writes into a temporary directory beside
``out_dir`` and renames it into place at the end, so ``out_dir`` is either complete
or absent. It holds:

* ``model.keras``       — the Keras model (custom layers reload with only
  :mod:`caffe2tf.backend.layers` imported);
* ``saved_model/``      — a TensorFlow SavedModel with a ``serving_default`` signature;
* ``conversion.json``   — what was converted how (:mod:`caffe2tf.model_dir.record`).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Literal, Mapping, Sequence

from caffe2tf.errors import Caffe2TFError
from caffe2tf.ir import Graph
from caffe2tf.model_dir.record import ConversionRecord, Preprocessing, conversion_record, write_record
from caffe2tf.model_dir.saved_model import export_saved_model

log = logging.getLogger(__name__)

__all__ = ["ConversionResult", "Lowered", "OutputExistsError", "Preprocessing", "convert", "default_output_dir",
           "lower"]


@dataclass
class ConversionResult:
    out_dir: Path
    record: ConversionRecord
    timings: dict[str, float] = field(default_factory=dict)
    graph: Graph | None = None
    model: object | None = None
    verification: object | None = None


@dataclass
class Lowered:
    """What :func:`lower` made: the graph as read, the graph after the passes, and the
    Keras model built from the latter (a :class:`~caffe2tf.backend.build.BuildResult`)."""

    original: Graph
    graph: Graph
    build: Any


class OutputExistsError(Caffe2TFError):
    pass


def default_output_dir(prototxt: str | os.PathLike, net_name: str) -> Path:
    """Where ``convert`` writes when no output is named: beside the prototxt, named after
    the net (its ``name:``, else the prototxt's stem) with a ``_tf`` suffix, e.g.
    ``models/VGG_ILSVRC_16_layers_tf`` — the suffix keeps it from ever being a folder the
    user had for something else."""
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in net_name.strip()).strip("._")
    return Path(prototxt).parent / f"{stem or Path(prototxt).stem}_tf"


@contextmanager
def _stage(timings: dict[str, float], name: str, progress: Callable[[str], None] | None) -> Iterator[None]:
    if progress:
        progress(name)
    t0 = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t0
    log.info("%s: %.2f s", name, timings[name])


@contextmanager
def _untimed(name: str) -> Iterator[None]:
    yield


def lower(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None, fold: bool = True, *,
          input_shapes: Mapping[str, Sequence[int]] | None = None, allow_unknown_fields: bool = False,
          input_layout: str = "nhwc", outputs: Literal["graph", "all"] = "graph", original: Graph | None = None,
          stage: Callable[[str], ContextManager] = _untimed, after_read: Callable[[Graph], None] | None = None
          ) -> Lowered:
    """Caffe files -> IR -> passes -> Keras model.

    Args:
        fold: run the BN/Scale folding passes (see :func:`caffe2tf.passes.run_passes`).
        outputs: ``"graph"`` (the net's outputs) or ``"all"`` (every layer output, for ``diff``).
        original: the graph already read from these files (``diff`` reads first to learn the
            input shapes); ``None`` reads it.
        stage: a context manager per stage name (``read``, ``fold``, ``build``), for timing.
        after_read: called with the graph as read, before the passes.
    Raises:
        Caffe2TFError: bad input; :class:`~caffe2tf.errors.UnsupportedLayerError` lists every
        unsupported type at once (checked once, by the builder, before any layer is built).
    """
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.passes import run_passes

    if original is None:
        with stage("read"):
            original = load_net(prototxt, caffemodel, input_shapes=input_shapes,
                                allow_unknown_fields=allow_unknown_fields)
    if after_read is not None:
        after_read(original)
    with stage("fold"):
        graph = run_passes(original, fold=fold)
    with stage("build"):
        build = build_keras_model(graph, input_layout=input_layout, outputs=outputs)
    return Lowered(original, graph, build)


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

    def refuse_existing(out: Path) -> None:
        if out.exists() and not force:
            raise OutputExistsError("exists; pass --force to replace it", file=str(out))

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        refuse_existing(out)  # before any work when the user named it
    timings: dict[str, float] = {}
    with _stage(timings, "init", progress):  # importing TensorFlow/Keras, timed on its own
        import caffe2tf.backend.build  # noqa: F401
        from caffe2tf.backend import registry

        for plugin in plugins:  # before reading: a plug-in may register shape rules too
            registry.load_plugin(plugin)

    def named_output(original: Graph) -> None:
        nonlocal out
        if out is None:
            out = default_output_dir(prototxt, original.name)
            refuse_existing(out)

    lowered = lower(prototxt, caffemodel, fold, input_shapes=input_shapes, allow_unknown_fields=allow_unknown_fields,
                    input_layout=input_layout, stage=lambda name: _stage(timings, name, progress),
                    after_read=named_output)
    original, graph, build = lowered.original, lowered.graph, lowered.build
    assert out is not None
    record = conversion_record(original, graph, build, input_layout=input_layout, fold=fold,
                               prototxt=str(prototxt), caffemodel=str(caffemodel) if caffemodel else None,
                               preprocessing=preprocessing)
    if class_names is not None:
        record.class_names = list(class_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with _stage(timings, "save", progress):
            build.model.save(tmp / "model.keras")
            if save_saved_model:
                export_saved_model(build.model, tmp / "saved_model")
        result = ConversionResult(out_dir=out, record=record, timings=timings, graph=graph, model=build.model)
        if verify is not None:
            with _stage(timings, "verify", progress):
                result.verification = verify(original, graph, tmp)
        record.timings_s = {k: round(v, 3) for k, v in timings.items()}
        write_record(tmp, record)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
