"""Reading a network definition (.prototxt, protobuf text format).

``parse_prototxt(path)`` returns a ``caffe_pb2.NetParameter`` plus the line on
which every layer block starts, so that later errors can name the line. Parse
errors become a one-line :class:`PrototxtError` with ``file:line:column``;
a field our schema does not know names the field and the layer it is in.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import PrototxtError

log = logging.getLogger(__name__)

MAX_PROTOTXT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LayerBlock:
    """Where one top-level ``layer {`` / ``layers {`` block starts and ends."""

    line: int
    end_line: int
    name: str | None
    v1: bool


@dataclass(frozen=True)
class ParsedPrototxt:
    net: caffe_pb2.NetParameter
    blocks: list[LayerBlock]  # in file order, for `layer` and `layers` blocks
    path: str


_TOKEN = re.compile(
    r'(?P<str>"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\')'
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<open>\{|<)|(?P<close>\}|>)"
    r"|(?P<nl>\n)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
)


def scan_layer_blocks(text: str) -> list[LayerBlock]:
    """Find top-level layer blocks with a small tokenizer (strings and comments aware)."""
    blocks: list[LayerBlock] = []
    depth = 0
    line = 1
    pending_word: str | None = None
    current: dict | None = None
    expect_name = False
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "nl":
            line += 1
        elif kind == "comment":
            continue
        elif kind == "str":
            if current is not None and expect_name and depth == 1 and current["name"] is None:
                current["name"] = m.group()[1:-1]
            expect_name = False
            line += m.group().count("\n")
        elif kind == "word":
            word = m.group()
            expect_name = depth == 1 and word == "name"
            pending_word = word
        elif kind == "open":
            if depth == 0 and pending_word in ("layer", "layers"):
                current = {"line": line, "name": None, "v1": pending_word == "layers"}
            depth += 1
            pending_word = None
        elif kind == "close":
            depth = max(depth - 1, 0)
            if depth == 0 and current is not None:
                blocks.append(LayerBlock(current["line"], line, current["name"], current["v1"]))
                current = None
    return blocks


def _layer_at(blocks: list[LayerBlock], line: int) -> str | None:
    for b in blocks:
        if b.line <= line <= b.end_line:
            return b.name or f"#{blocks.index(b)}"
    return None


_LOC = re.compile(r"^(\d+):(\d+)\s*:\s*(.*)$", re.S)


def parse_prototxt_text(text: str, path: str = "<prototxt>", *, allow_unknown_fields: bool = False) -> ParsedPrototxt:
    blocks = scan_layer_blocks(text)
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as exc:
        line, col, msg = _split_location(exc)
        if "has no field named" in msg and allow_unknown_fields:
            layer = _layer_at(blocks, line) if line else None
            log.warning("%s:%s%s: ignoring a field our schema does not know (%s)",
                        path, line, f", layer '{layer}'" if layer else "", msg)
            net = caffe_pb2.NetParameter()
            try:
                text_format.Parse(text, net, allow_unknown_field=True)
            except text_format.ParseError as exc2:
                raise _parse_error(exc2, path, blocks) from None
            except RecursionError:  # skipping unknown fields recurses once per nested block
                raise _too_deep(path, line, blocks) from None
        else:
            raise _parse_error(exc, path, blocks) from None
    except RecursionError:
        raise _too_deep(path, None, blocks) from None
    n_blocks = len(net.layer) + len(net.layers)
    if len(blocks) != n_blocks:  # e.g. layers written with `layer: { ... }`; lines unknown
        blocks = []
    return ParsedPrototxt(net=net, blocks=blocks, path=path)


def _too_deep(path: str, line: int | None, blocks: list[LayerBlock]) -> PrototxtError:
    return PrototxtError("blocks are nested too deeply to be a network definition", file=path, line=line,
                         layer=_layer_at(blocks, line) if line else None)


def _parse_error(exc: text_format.ParseError, path: str, blocks: list[LayerBlock]) -> PrototxtError:
    line, col, msg = _split_location(exc)
    layer = _layer_at(blocks, line) if line else None
    field = re.search(r'has no field named "([^"]+)"', msg)
    value = re.search(r'(Enum type "[^"]+") has no value named (\S+?)\.?$', msg)
    if field:
        what = (f"unknown field '{field.group(1)}' ({msg.rstrip('.')}); it may belong to a Caffe fork "
                "caffe2tf does not model — pass --ignore-unknown-fields to skip it with a warning")
    elif value:  # never skipped: dropping it would silently fall back to the default value
        what = f"unknown value '{value.group(2)}' of {value.group(1)}"
    else:
        what = f"syntax error: {msg}"
    return PrototxtError(what, file=path, line=line, column=col, layer=layer)


def _split_location(exc: text_format.ParseError) -> tuple[int | None, int | None, str]:
    line = exc.GetLine() if hasattr(exc, "GetLine") else None
    col = exc.GetColumn() if hasattr(exc, "GetColumn") else None
    msg = str(exc)
    m = _LOC.match(msg)
    if m:
        line, col, msg = int(m.group(1)), int(m.group(2)), m.group(3)
    return line, col, " ".join(msg.split())


def parse_prototxt(path: str | Path, *, allow_unknown_fields: bool = False) -> ParsedPrototxt:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_PROTOTXT_BYTES:
            raise PrototxtError(f"file is {size} bytes; a network definition over "
                                f"{MAX_PROTOTXT_BYTES} bytes is not plausible", file=str(p))
        raw = p.read_bytes()
    except OSError as exc:
        raise PrototxtError(f"cannot read: {exc.strerror or exc}", file=str(p)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PrototxtError("not a text file (invalid UTF-8); is this a binary .caffemodel?",
                            file=str(p), line=line) from None
    return parse_prototxt_text(text, str(p), allow_unknown_fields=allow_unknown_fields)
