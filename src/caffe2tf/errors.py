"""The one error hierarchy of caffe2tf.

Every problem caused by the user's input is a :class:`Caffe2TFError` whose
``str()`` is a single line naming the file and the line or layer. The CLI turns
these into that line on stderr and exit status 2; nothing else may escape the
reader on bad input.
"""
from __future__ import annotations


class Caffe2TFError(Exception):
    """Bad input: a one-line, user-facing message."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, layer: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.layer = layer
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = _printable(str(self.file))
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        parts = [p for p in (where, f"layer '{_printable(self.layer)}'" if self.layer else "") if p]
        prefix = ", ".join(parts)
        msg = " ".join(self.message.split())  # always one line
        return f"{prefix}: {msg}" if prefix else msg


def _printable(name: str) -> str:
    """A file or layer name with control characters (a newline in a layer name) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


class PrototxtError(Caffe2TFError):
    """The network definition cannot be parsed or is inconsistent."""


class WeightsError(Caffe2TFError):
    """The caffemodel cannot be read or does not fit the network."""


class ShapeError(Caffe2TFError):
    """A layer's parameters do not fit its inputs."""


class UnsupportedLayerError(Caffe2TFError):
    """The network uses layer types caffe2tf cannot convert (all listed at once)."""


class ConversionError(Caffe2TFError):
    """A translator failed on a layer; the message ends with the layer's input shapes
    (Caffe's NCHW, ``?`` for an unknown dimension) when they are known."""

    def __init__(self, message: str, *, input_shapes=None, **where) -> None:
        self.input_shapes = None if input_shapes is None else [None if s is None else tuple(s) for s in input_shapes]
        if self.input_shapes is not None:
            shown = ", ".join("unknown" if s is None else "(" + ", ".join("?" if d is None else str(d) for d in s) + ")"
                              for s in self.input_shapes)
            message = f"{message} [input shapes: {shown or 'none'}]"
        super().__init__(message, **where)


class ReferenceFileError(Caffe2TFError):
    """A reference-activation file is missing, unreadable or malformed."""


class RequestError(Caffe2TFError):
    """A request the service refuses: ``status`` (4xx/5xx), a one-line message and
    optional extra response headers (``Retry-After``, ``Allow``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        super().__init__(str(message))


class OverloadedError(Caffe2TFError):
    """The inference pool and its queue are full (the service answers 503)."""


class ExportError(Caffe2TFError):
    """The model cannot be exported as asked (one line naming the layer where known)."""
