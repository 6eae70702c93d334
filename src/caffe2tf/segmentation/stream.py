"""Segment a list of photos as a pipeline: decode ahead, model, write behind.

:func:`segment_files` runs three stages of :class:`~caffe2tf.segmentation.protocol.
SegmentationProtocol` on three threads joined by bounded queues:

1. *read* (background): decode the next photo and :meth:`prepare` it (resize,
   preprocess, pad, windows);
2. *model* (the calling thread): :meth:`run_model`, every window and mirror;
3. *write* (background): :meth:`finish` (scores back to the photo's size, argmax),
   then the label PNG, overlay, legend PNG and JSON.

While the model runs on photo ``i``, photo ``i + 1`` is decoded and photo ``i - 1``
written. Each queue holds at most ``queue_size`` photos, so at most
``2 * queue_size + 3`` photos are in memory at once. Output files and summary lines
are those of the sequential loop (``streaming=False``), in the order of ``files``.

A photo that cannot be read stops the run as the sequential loop does: every photo
before it is written completely, nothing is written for it or after it, and its
:class:`~caffe2tf.errors.Caffe2TFError` (one line naming the file) is raised. A
photo's four files are written under temporary names and renamed at the end, so a
failure while writing leaves none of them.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caffe2tf.errors import Caffe2TFError
from caffe2tf.segmentation import visualize
from caffe2tf.segmentation.evaluate import read_rgb
from caffe2tf.segmentation.protocol import LogitsFn, PreparedImage, SegmentationProtocol

__all__ = ["OUTPUT_SUFFIXES", "SegmentWriter", "read_image", "segment_files"]

log = logging.getLogger(__name__)

#: The files written per photo: ``<stem><suffix>`` in the output folder.
OUTPUT_SUFFIXES = ("_labels.png", "_overlay.png", "_legend.png", "_legend.json")
_POLL_S = 0.1


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]``; any decoder failure is a one-line :class:`Caffe2TFError`."""
    try:
        return read_rgb(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad input file
        raise Caffe2TFError(f"not a readable image ({type(exc).__name__})", file=str(path)) from None


@dataclass(frozen=True)
class SegmentWriter:
    """Writes one photo's label PNG, overlay, legend PNG and JSON; returns its summary line."""

    out_dir: Path
    class_names: Sequence[str]
    palette: np.ndarray
    alpha: float = 0.5
    to_output_classes: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, path: Path, image: np.ndarray, labels: np.ndarray) -> str:
        if self.to_output_classes is not None:
            labels = self.to_output_classes(labels)
        final = {s: self.out_dir / f"{path.stem}{s}" for s in OUTPUT_SUFFIXES}
        # hidden names with the real suffix (Pillow picks the format by it), renamed at the end
        tmp = {s: self.out_dir / f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part{s}"
               for s in OUTPUT_SUFFIXES}
        try:
            visualize.write_label_png(labels, tmp["_labels.png"])
            visualize.write_overlay_png(image, labels, tmp["_overlay.png"], self.palette, alpha=self.alpha,
                                        ignore_index=None)
            entries = visualize.legend(labels, list(self.class_names), self.palette, ignore_index=None)
            visualize.write_legend_png(entries, tmp["_legend.png"])
            tmp["_legend.json"].write_text(json.dumps(
                [{"index": e.index, "name": e.name, "color": "#%02x%02x%02x" % e.colour,
                  "share": round(e.share, 6)} for e in entries], indent=1))
            for s in OUTPUT_SUFFIXES:
                os.replace(tmp[s], final[s])
        finally:
            for p in tmp.values():
                p.unlink(missing_ok=True)
        top = ", ".join(f"{e.name} {100 * e.share:.1f}%" for e in entries[:4])
        return f"{path.name}: {top}"


_END = object()


@dataclass
class _Item:
    index: int
    path: Path
    image: np.ndarray | None = None
    prepared: PreparedImage | None = None
    sums: list | None = None
    error: BaseException | None = None


class _Stop(Exception):
    """Another stage failed; this one gives up quietly."""


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


def segment_files(files: Sequence[Path], protocol: SegmentationProtocol, logits_fn: LogitsFn,
                  write: Callable[[Path, np.ndarray, np.ndarray], str], *, streaming: bool = True,
                  queue_size: int = 1, read: Callable[[Path], np.ndarray] = read_image,
                  on_done: Callable[[int, str], None] | None = None) -> list[str]:
    """Segment ``files`` in order; ``write(path, image, labels)`` returns a summary line.

    Returns the summary lines in the order of ``files``. ``streaming=False`` runs the
    stages one after the other on this thread (the reference the pipeline must equal).
    ``on_done(index, line)`` is called once a photo's files are written.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, received {queue_size}")
    files = [Path(p) for p in files]
    lines: list[str | None] = [None] * len(files)

    def done(i: int, line: str) -> None:
        lines[i] = line
        if on_done is not None:
            on_done(i, line)

    if not streaming:
        for i, path in enumerate(files):
            image = read(path)
            prepared = protocol.prepare(image)
            result = protocol.finish(prepared, protocol.run_model(prepared, logits_fn))
            done(i, write(path, image, result.labels))
        return [str(line) for line in lines]

    stop = threading.Event()
    ahead: queue.Queue = queue.Queue(maxsize=queue_size)
    behind: queue.Queue = queue.Queue(maxsize=queue_size)
    write_error: list[BaseException] = []

    def reader() -> None:
        try:
            for i, path in enumerate(files):
                item = _Item(i, path)
                try:
                    item.image = read(path)
                    item.prepared = protocol.prepare(item.image)
                except BaseException as exc:  # noqa: BLE001 - handed to the model thread, in order
                    item.error = exc
                _put(ahead, item, stop)
                if item.error is not None:
                    return
            _put(ahead, _END, stop)
        except _Stop:
            pass

    def writer() -> None:
        try:
            while True:
                item = _get(behind, stop)
                if item is _END:
                    return
                result = protocol.finish(item.prepared, item.sums)
                done(item.index, write(item.path, item.image, result.labels))
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised on the model thread
            write_error.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, name="segment-read", daemon=True),
               threading.Thread(target=writer, name="segment-write", daemon=True)]
    for t in threads:
        t.start()
    failure: BaseException | None = None
    try:
        while True:
            item = _get(ahead, stop)
            if item is _END:
                break
            if item.error is not None:
                failure = item.error
                break
            item.sums = protocol.run_model(item.prepared, logits_fn)
            _put(behind, item, stop)
        _put(behind, _END, stop)  # the writer finishes every photo before this one
        threads[1].join()
    except _Stop:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join()
    if write_error:
        raise write_error[0]
    if failure is not None:
        raise failure
    return [str(line) for line in lines]


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
