"""conversion.json as the typed ConversionRecord: what `convert` writes reads back field by
field, writes back byte for byte, and keeps the keys a newer caffe2tf added."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffe2tf.model_dir.preprocessing import IMAGENET_MEAN_BGR, Preprocessing
from caffe2tf.model_dir.record import (CONVERSION_FORMAT, RECORD_NAME, ConversionRecord, LayerRecord,
                                       ModelDirError, TensorRecord, read_record, update_record, write_record)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mini_pspnet"
MEAN_BGR = (103.939, 116.779, 123.68)
CLASSES = [f"class {i}" for i in range(10)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from caffe2tf.pipeline import convert

    out = tmp_path_factory.mktemp("record") / "mini"
    convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", out, save_saved_model=False,
            preprocessing=Preprocessing(mean=MEAN_BGR, scale=0.5, bgr=True), class_names=CLASSES)
    return out


def _raw(model_dir: Path) -> dict:
    return json.loads((model_dir / RECORD_NAME).read_text())


def test_convert_record_reads_typed(converted):
    raw = _raw(converted)
    rec = read_record(converted)
    assert rec.format == CONVERSION_FORMAT == raw["format"]
    assert rec.name == raw["name"] == "mini_pspnet"
    assert rec.source.prototxt == str(EXAMPLE / "deploy.prototxt")
    assert rec.source.caffemodel_sha256 == raw["source"]["caffemodel_sha256"] and len(rec.source.caffemodel_sha256) == 64
    assert rec.input_layout == "nhwc" and not rec.input_nchw and not rec.output_nchw
    assert rec.folded is True and rec.folds == raw["folds"]
    assert all(isinstance(t, TensorRecord) for t in rec.inputs + rec.outputs)
    (inp,) = rec.inputs
    assert inp.blob == "data" and inp.caffe_shape == raw["inputs"][0]["caffe_shape"]
    n, c, h, w = inp.caffe_shape
    assert inp.keras_shape == [n, h, w, c]
    assert [o.blob for o in rec.outputs] == [o["blob"] for o in raw["outputs"]]
    assert all(isinstance(layer, LayerRecord) for layer in rec.layers)
    assert [layer.name for layer in rec.layers] == [layer["name"] for layer in raw["layers"]]
    first = rec.layer(raw["layers"][1]["name"])
    assert first is not None and first.to_json() == raw["layers"][1]
    assert rec.class_names == CLASSES and set(rec.timings_s) >= {"read", "build", "save"}
    # the mean is kept in the net's channel order (BGR), on disk and in memory
    assert raw["preprocessing"] == {"mean": list(MEAN_BGR), "scale": 0.5, "bgr": True}
    assert rec.preprocessing == Preprocessing(mean=MEAN_BGR, scale=0.5, bgr=True)
    assert rec.preprocessing.mean_rgb == MEAN_BGR[::-1]
    assert rec.extra == {}


def test_convert_record_writes_back_unchanged(converted, tmp_path):
    raw = _raw(converted)
    rec = read_record(converted)
    assert rec.to_json() == raw
    assert list(rec.to_json()) == list(raw)  # the keys in the order convert writes them
    assert [list(x) for x in rec.to_json()["layers"]] == [list(x) for x in raw["layers"]]
    assert ConversionRecord.from_json(raw).to_json() == raw
    write_record(tmp_path, rec)
    assert (tmp_path / RECORD_NAME).read_text() == (converted / RECORD_NAME).read_text()


def test_unknown_keys_survive_read_update_write(converted, tmp_path):
    raw = _raw(converted)
    raw["from_the_future"] = {"answer": 42}
    raw["source"]["weights_url"] = "https://example.com/w"
    raw["inputs"][0]["dtype"] = "float16"
    raw["layers"][0]["note"] = "new"
    raw["preprocessing"]["mean"] = [1.0, 2.0, 3.0]
    (tmp_path / RECORD_NAME).write_text(json.dumps(raw))

    def change(rec: ConversionRecord) -> None:
        rec.exports.setdefault("tflite", {})["model.tflite"] = {"quantize": "none"}

    update_record(tmp_path, change)
    back = _raw(tmp_path)
    assert back["from_the_future"] == {"answer": 42}
    assert back["source"]["weights_url"] == "https://example.com/w"
    assert back["inputs"][0]["dtype"] == "float16" and back["layers"][0]["note"] == "new"
    assert back["exports"] == {"tflite": {"model.tflite": {"quantize": "none"}}}
    assert back["preprocessing"]["mean"] == [1.0, 2.0, 3.0]  # the net's order, not flipped on the way
    raw["exports"] = back["exports"]
    assert back == raw
    rec = read_record(tmp_path)
    assert rec.extra == {"from_the_future": {"answer": 42}} and rec.inputs[0].extra == {"dtype": "float16"}
    assert rec.preprocessing.mean == (1.0, 2.0, 3.0) and rec.preprocessing.mean_rgb == (3.0, 2.0, 1.0)


def test_a_minimal_record_reads_with_defaults():
    rec = ConversionRecord.from_json({"format": CONVERSION_FORMAT, "name": "erf_net", "preprocessing": None,
                                      "inputs": [{"blob": "data", "keras_shape": [1, 16, 16, 3]}],
                                      "layers": [{"name": "conv1", "type": "Convolution", "keras_layers": ["conv1"]}]})
    assert rec.input_layout == "nhwc" and rec.preprocessing is None and rec.class_names is None
    assert rec.inputs[0].keras_shape == [1, 16, 16, 3] and rec.inputs[0].caffe_shape == []
    assert rec.layers[0].keras_layers == ["conv1"] and rec.layers[0].tops == []
    assert rec.to_json()["preprocessing"] is None and "class_names" not in rec.to_json()
    # without a recorded mean, photos get the ImageNet mean
    assert rec.photo_preprocessing() == Preprocessing(mean=IMAGENET_MEAN_BGR, scale=1.0, bgr=True)
    nchw = ConversionRecord.from_json({"input_layout": "nchw", "output_layout": "nchw"})
    assert nchw.input_nchw and nchw.output_nchw and nchw.to_json()["output_layout"] == "nchw"


def test_read_record_refuses_what_is_not_a_record(tmp_path):
    with pytest.raises(ModelDirError, match="no such directory"):
        read_record(tmp_path / "missing")
    with pytest.raises(ModelDirError, match="no conversion.json"):
        read_record(tmp_path)
    (tmp_path / RECORD_NAME).write_text(json.dumps({"format": "something-else/1"}))
    with pytest.raises(ModelDirError, match="not a caffe2tf conversion record"):
        read_record(tmp_path)
    (tmp_path / RECORD_NAME).write_text("{")
    with pytest.raises(ModelDirError, match="unreadable"):
        read_record(tmp_path)
