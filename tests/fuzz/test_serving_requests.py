"""The service's request parsing under fuzzed input: ``:predict`` bodies, ``:segment``
uploads, headers and paths, through the in-process ASGI app (Starlette's TestClient).

The app serves a small stand-in model (a NumPy signature, no TensorFlow): the request
parsing, limits and error answers are the service's own code; only the arithmetic behind
the signature is replaced, so each example costs milliseconds. One model takes one 8x8x3
image input and gives 8x8 scores for 4 classes (so ``:segment`` runs the whole protocol);
the other takes two named inputs of different ranks.

For every request: the answer is 200 (with the documented JSON or PNG) or a 4xx whose
body is exactly ``{"error": "<one line>"}``; never a 5xx, never a hang (10 s per request).
"""
from __future__ import annotations

import io
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import fuzz_settings, tally, time_limit
from hypothesis import event, given, note
from hypothesis import strategies as st
from PIL import Image

from caffe2tf.model_dir.record import ConversionRecord

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

H = W = 8
CLASSES = 4
MAX_BODY = 64 * 1024
MAX_PIXELS = 40_000
MAX_BATCH = 4


def _image_model():
    from caffe2tf.model_dir.served import SIGNATURE, ServedModel, Signature, TensorInfo

    inputs = {"data": TensorInfo("data", "float32", (None, H, W, 3))}
    outputs = {"output_0": TensorInfo("output_0", "float32", (None, H, W, CLASSES))}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["data"]
        w = np.linspace(-1, 1, 3 * CLASSES, dtype=np.float32).reshape(3, CLASSES)
        return {"output_0": np.tensordot(x, w, axes=([3], [0])).astype(np.float32)}

    sig = Signature(SIGNATURE, inputs, outputs, run)
    record = {"name": "fuzzy", "preprocessing": {"mean": [104.0, 117.0, 123.0], "scale": 1.0, "bgr": True}}
    from caffe2tf.model_dir.served import _signature_json

    return ServedModel(name="fuzzy", path=Path("."), record=ConversionRecord.from_json(record), signatures={SIGNATURE: sig},
                       backend="keras", signature_defs={SIGNATURE: _signature_json(inputs, outputs)})


def _two_input_model():
    from caffe2tf.model_dir.served import SIGNATURE, ServedModel, Signature, TensorInfo, _signature_json

    inputs = {"a": TensorInfo("a", "float32", (None, 3)), "b": TensorInfo("b", "float32", (None, 2, 2))}
    outputs = {"output_0": TensorInfo("output_0", "float32", (None, 3)),
               "output_1": TensorInfo("output_1", "float32", (None,))}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output_0": feeds["a"] * 2, "output_1": feeds["b"].sum(axis=(1, 2))}

    sig = Signature(SIGNATURE, inputs, outputs, run)
    return ServedModel(name="twin", path=Path("."), record=ConversionRecord.from_json({"name": "twin"}),
                       signatures={SIGNATURE: sig}, backend="keras", signature_defs={SIGNATURE: _signature_json(inputs, outputs)})


@pytest.fixture(scope="module")
def clients():
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import ServeConfig, create_app

    config = ServeConfig(workers=1, queue_size=4, max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS,
                         max_batch=MAX_BATCH)
    image_app = create_app(_image_model(), config)
    twin_app = create_app(_two_input_model(), config)
    assert image_app.state.service.segmentation is not None
    with TestClient(image_app, raise_server_exceptions=False) as a, \
            TestClient(twin_app, raise_server_exceptions=False) as b:
        yield {"fuzzy": a, "twin": b}


def check_answer(r, page_ok: bool = False) -> dict | None:  # noqa: ANN001
    """200, or a 4xx with a one-line ``{"error": ...}``; returns the JSON of a 200 JSON answer."""
    note(f"-> {r.status_code} {r.headers.get('content-type')} {r.content[:300]!r}")
    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    event(f"status {r.status_code}")
    if r.status_code == 200:
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        if page_ok and r.headers["content-type"].startswith("text/html"):  # the client made ".." into "/"
            return None
        assert r.headers["content-type"].startswith("image/png")
        Image.open(io.BytesIO(r.content)).load()
        return None
    assert 400 <= r.status_code < 500
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    assert isinstance(doc["error"], str) and doc["error"] and "\n" not in doc["error"], doc
    event(f"error: {doc['error'][:40]}")
    return None


def _post(client, path: str, **kw):  # noqa: ANN001, ANN202
    with time_limit(10, f"POST {path}"):
        return client.post(path, **kw)


# ---------------------------------------------------------------------------------- :predict
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-300, 300),
    st.sampled_from([0, 1, -1, 1e308, -1e308, 3.4e38, 3.5e38, 1e-45, 2**31, 2**63, 2**64, 10**30, -10**40]),
)
JSON_LEAF = st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=6),
                      st.sampled_from(["NaN", "\u2028", "\ud7ff", "b64", "\x00"]))
JSON_ANY = st.recursive(JSON_LEAF, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.text(max_size=5), kids, max_size=3)),
                        max_leaves=20)


@st.composite
def nested(draw: st.DrawFn, shape: tuple[int, ...]) -> object:
    """A nested list of ``shape`` (values from a seeded generator: cheap to draw), sometimes
    with stray leaves (strings, null, huge numbers) or made ragged."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["float", "float", "float", "int", "bool", "big"]))
    if kind == "float":
        arr: object = (rng.standard_normal(shape) * 100).astype(np.float32).tolist()
    elif kind == "int":
        arr = rng.integers(-300, 300, shape).tolist()
    elif kind == "bool":
        arr = rng.integers(0, 2, shape).astype(bool).tolist()
    else:
        arr = rng.choice([1e308, -1e308, 3.5e38, 1e-45, 2**63, 10**30], shape).tolist()
    if not shape:
        return draw(JSON_LEAF) if draw(st.integers(0, 9)) == 0 else arr
    for _ in range(draw(st.integers(0, 2))):  # a stray leaf or a ragged row somewhere
        node = arr
        for _ in range(draw(st.integers(0, len(shape) - 1))):
            if not isinstance(node, list) or not node or not isinstance(node[0], list):
                break
            child = node[draw(st.integers(0, len(node) - 1))]
            if not isinstance(child, list):  # a stray leaf placed earlier: stay above it
                break
            node = child
        if not isinstance(node, list) or not node:  # an earlier stray leaf took this place
            break
        i = draw(st.integers(0, len(node) - 1))
        op = draw(st.sampled_from(["leaf", "drop", "nest"]))
        if op == "leaf":
            node[i] = draw(JSON_LEAF)
        elif op == "drop":
            del node[i]
        else:
            node[i] = [node[i]]
    return arr


def _near(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` or a wrong one (one axis off, an axis more or fewer)."""
    kind = draw(st.sampled_from(["ok", "ok", "ok", "axis", "extra", "fewer"]))
    s = list(shape)
    if kind == "axis":
        i = draw(st.integers(0, len(s) - 1))
        s[i] = max(0, s[i] + draw(st.sampled_from([-1, 1, 2])))
    elif kind == "extra":
        s.insert(draw(st.integers(0, len(s))), draw(st.integers(1, 2)))
    elif kind == "fewer" and s:
        del s[draw(st.integers(0, len(s) - 1))]
    return tuple(s)


@st.composite
def predict_docs(draw: st.DrawFn, model: str) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_ANY)
    batch = draw(st.integers(0, MAX_BATCH + 1))
    shapes = {"data": (H, W, 3)} if model == "fuzzy" else {"a": (3,), "b": (2, 2)}
    doc: dict = {}
    if draw(st.booleans()):
        row = {k: draw(nested(_near(draw, s))) for k, s in shapes.items()}
        if model == "fuzzy" and draw(st.booleans()):
            rows = [draw(nested(_near(draw, shapes["data"]))) for _ in range(batch)]
        else:
            rows = [{k: draw(nested(_near(draw, s))) for k, s in shapes.items()} for _ in range(batch)]
            if rows and draw(st.integers(0, 5)) == 0:
                rows[0].pop(next(iter(row)), None)
        doc["instances"] = rows
    else:
        if model == "fuzzy" and draw(st.booleans()):
            doc["inputs"] = draw(nested(_near(draw, (batch,) + shapes["data"])))
        else:
            doc["inputs"] = {k: draw(nested(_near(draw, (batch,) + s))) for k, s in shapes.items()}
    if draw(st.integers(0, 4)) == 0:
        doc["signature_name"] = draw(st.one_of(st.sampled_from(["serving_default", "", "other"]), JSON_LEAF))
    if draw(st.integers(0, 6)) == 0:
        doc[draw(st.sampled_from(["instances", "inputs", "extra", ""]))] = draw(JSON_ANY)
    return doc


def _encode_json(draw: st.DrawFn, doc: object) -> bytes:
    style = draw(st.sampled_from(["plain", "plain", "plain", "nan", "mutate", "utf16", "bom"]))
    try:
        text = json.dumps(doc, allow_nan=True)
    except (ValueError, OverflowError):
        text = "{}"
    if style == "nan":
        text = text.replace("0.0", draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0"])), 1)
    if style == "utf16":
        return text.encode("utf-16")
    data = text.encode("utf-8", errors="surrogatepass")
    if style == "bom":
        return b"\xef\xbb\xbf" + data
    if style == "mutate" and data:
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["cut", "flip", "insert"]))
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            if op == "cut":
                del data[pos:]
            elif op == "flip" and data:
                data[pos] ^= draw(st.integers(1, 255))
            else:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        data = bytes(data)
    return data


CONTENT_TYPES = st.one_of(st.none(), st.sampled_from([
    "application/json", "application/json; charset=utf-8", "text/plain", "multipart/form-data",
    "multipart/form-data; boundary=", "application/x-www-form-urlencoded", "image/png", "*/*", "", "\u00e9",
]))


@st.composite
def headers(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    h: dict[str, str] = {}
    ct = draw(CONTENT_TYPES)
    if ct is not None:
        h["content-type"] = ct
    lie = draw(st.sampled_from(["none"] * 6 + ["less", "more", "garbage", "negative", "huge", "zero"]))
    if lie != "none":
        h["content-length"] = {"less": str(max(len(body) - 1, 0)), "more": str(len(body) + 7),
                               "garbage": draw(st.sampled_from(["abc", "1.5", " 3", "0x10", "", "1 2"])),
                               "negative": "-5", "huge": str(10**20), "zero": "0"}[lie]
    if draw(st.integers(0, 5)) == 0:
        h["accept"] = draw(st.sampled_from(["image/png", "image/png;content=overlay;q=0.5, application/json",
                                            "*/*;q=abc", ";;;", "image/png;q=", "text/html"]))
    return h


def _send(client, path: str, body: bytes, hdrs: dict[str, str]):  # noqa: ANN001, ANN202
    note(f"POST {path} headers={hdrs} body[:300]={body[:300]!r}")
    try:
        return _post(client, path, content=body, headers=hdrs)
    except Exception as exc:  # noqa: BLE001 - httpx refusing to *send* a header (e.g. non-ASCII) is the client's
        if type(exc).__name__ in ("UnicodeEncodeError", "LocalProtocolError", "InvalidHeader"):
            event("client refused to send")
            return None
        raise


@fuzz_settings(ci=100, long=20_000)
@given(st.data())
def test_predict_bodies(clients, data: st.DataObject) -> None:
    model = data.draw(st.sampled_from(["fuzzy", "twin"]), label="model")
    doc = data.draw(predict_docs(model), label="doc")
    body = _encode_json(data.draw, doc)
    hdrs = data.draw(headers(body), label="headers")
    version = data.draw(st.sampled_from(["", "", "/versions/1", "/versions/2", "/labels/x"]))
    r = _send(clients[model], f"/v1/models/{model}{version}:predict", body, hdrs)
    if r is None:
        return
    doc_back = check_answer(r)
    if r.status_code == 200:
        assert doc_back is not None and set(doc_back) <= {"predictions", "outputs"} and len(doc_back) == 1
    tally("predict")


# ---------------------------------------------------------------------------------- :segment
def _png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 8
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append((pos, data[pos:pos + 12 + n]))
        pos += 12 + n
    return out


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (with a valid CRC) but holds little data."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 16)
    return (b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
            + (len(idat) - 4).to_bytes(4, "big") + idat + zlib.crc32(idat).to_bytes(4, "big")
            + b"\0\0\0\0IEND" + zlib.crc32(b"IEND").to_bytes(4, "big"))


@st.composite
def images(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["PNG", "PNG", "JPEG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "claim", "empty",
                                 "junk"]))
    if kind == "empty":
        return b""
    if kind == "junk":
        return draw(st.binary(max_size=64))
    if kind == "claim":
        return _png_claiming(draw(st.sampled_from([0, 1, 300, 5000, 100_000, 2**31 - 1])),
                             draw(st.sampled_from([0, 1, 300, 5000, 100_000, 2**31 - 1])))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "I;16", "CMYK", "LA", "I", "F"]))
    seed = draw(st.integers(0, 2**16))
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    try:
        im = im.convert(mode)
    except ValueError:
        pass
    buf = io.BytesIO()
    try:
        kw = {"quality": draw(st.integers(1, 95)), "progressive": draw(st.booleans())} if kind == "JPEG" else {}
        im.save(buf, format=kind, **kw)
    except (OSError, ValueError, KeyError):
        Image.fromarray(arr).save(buf, format="PNG")
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "drop_chunk"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "flip":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
        data = bytes(b)
    elif damage == "drop_chunk" and data.startswith(b"\x89PNG"):
        chunks = _png_chunks(data)
        if len(chunks) > 1:
            pos, chunk = draw(st.sampled_from(chunks))
            data = data[:pos] + data[pos + len(chunk):]
    event(f"image {kind} {damage}")
    return data


def _multipart(draw: st.DrawFn, image: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = draw(st.sampled_from(["xyz", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a" * 70, "é", "-"]))
    style = draw(st.sampled_from(["file", "file", "field_only", "two_files", "broken", "no_end"]))
    parts = []
    name = draw(st.sampled_from(["image", "file", "", "\u00e9\u4e2d", 'a"b']))
    fname = draw(st.sampled_from(["photo.jpg", "", "../../etc/passwd", "x.png\r\nX-Evil: 1", "\u4e2d.png"]))
    if style in ("file", "two_files", "no_end", "broken"):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{fname}"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode("utf-8", "surrogatepass") + image + b"\r\n")
    if style in ("field_only", "two_files"):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'.encode())
    if style == "two_files":
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="b"; filename="b.png"\r\n\r\n'.encode()
                     + image[:10] + b"\r\n")
    body = b"".join(parts)
    if style == "broken":
        body = body[: max(1, len(body) // 2)]
    elif style != "no_end":
        body += f"--{boundary}--\r\n".encode("utf-8", "surrogatepass")
    ct = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data",
                               f'multipart/form-data; boundary="{boundary}"', "multipart/mixed; boundary=x"]))
    return body, {"content-type": ct}


QUERIES = st.fixed_dictionaries({}, optional={
    "output": st.sampled_from(["json", "labels", "overlay", "png", "LABEL", "bogus", "", "\u00e9"]),
    "alpha": st.sampled_from(["0", "1", "0.5", "-0.1", "1.01", "nan", "inf", "abc", "1e-400", ""]),
    "include": st.sampled_from(["overlay", "OVERLAY_PNG", "x", ""]),
    "format": st.sampled_from(["labels", "json", "x"]),
})


@fuzz_settings(ci=80, long=12_000)
@given(st.data())
def test_segment_uploads(clients, data: st.DataObject) -> None:
    image = data.draw(images(), label="image")
    if data.draw(st.booleans(), label="multipart"):
        body, hdrs = _multipart(data.draw, image)
    else:
        body = image
        hdrs = {"content-type": data.draw(st.sampled_from(["image/png", "image/jpeg", "application/octet-stream",
                                                           "application/json", ""]))}
    if data.draw(st.integers(0, 5)) == 0:
        hdrs.update(data.draw(headers(body)))
    query = data.draw(QUERIES, label="query")
    model = data.draw(st.sampled_from(["fuzzy", "fuzzy", "fuzzy", "twin"]), label="model")
    note(f"query={query}")
    r = _send(clients[model], f"/v1/models/{model}:segment?" + "&".join(f"{k}={v}" for k, v in query.items()),
              body, hdrs)
    if r is None:
        return
    doc = check_answer(r)
    if r.status_code == 200 and doc is not None:
        assert {"width", "height", "classes"} <= set(doc), doc
    tally("segment")


# ---------------------------------------------------------------------------------- paths
@fuzz_settings(ci=40, long=3_000)
@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       st.lists(st.sampled_from(["fuzzy", "twin", "versions", "1", "labels", "metadata", ":predict", ":segment",
                                 ":classify", ":regress", ":", "%00", "..", "\u00e9", "x", "/"]), max_size=5),
       st.binary(max_size=32))
def test_model_paths(clients, method: str, parts: list[str], body: bytes) -> None:
    path = "/v1/models/" + "".join(p if p.startswith((":", "/")) else "/" + p for p in parts).lstrip("/")
    note(f"{method} {path}")
    with time_limit(10, f"{method} {path}"):
        r = clients["fuzzy"].request(method, path, content=body if method != "GET" else None)
    if r.status_code == 405 and "error" not in r.text:  # Starlette's router (not ours) for PUT etc.
        event("router 405")
        return
    check_answer(r, page_ok=True)
    tally("paths")
