"""The segmentation setup read from a model directory (segmentation/setup.py) and the
segmenter loader (segmentation/loader.py): preprocessing in the right channel order, the
recorded classes and layouts, the user's overrides."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))  # serving_helpers

from serving_helpers import INDOOR_CLASSES, PSPNET_MEAN_BGR, converted_example, encode  # noqa: E402

from caffe2tf.errors import Caffe2TFError  # noqa: E402
from caffe2tf.model_dir.preprocessing import IMAGENET_MEAN_BGR, Preprocessing  # noqa: E402
from caffe2tf.model_dir.record import ConversionRecord  # noqa: E402

SEGMENT = "/v1/models/mini_pspnet:segment"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_example(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def served_model(model_dir: Path):
    from caffe2tf.model_dir.served import ServedModel

    return ServedModel.load(model_dir)


@pytest.fixture(scope="module")
def room_jpeg() -> bytes:
    from caffe2tf.segmentation.synthetic import synthetic_room

    return encode(synthetic_room((360, 480), seed=7)[0], "JPEG")


def _fake_model(record: dict, *, nchw: bool = False, classes: int = 4):
    """A served model without TensorFlow: a 1x1 'convolution' over a 16x16 3-channel input."""
    from caffe2tf.model_dir.served import SIGNATURE, ServedModel, Signature, TensorInfo

    in_shape = (None, 3, 16, 16) if nchw else (None, 16, 16, 3)
    out_shape = (None, 16, 16, classes)
    inputs = {"data": TensorInfo("data", "float32", in_shape)}
    outputs = {"output_0": TensorInfo("output_0", "float32", out_shape)}
    seen: list[tuple] = []

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["data"]
        seen.append(x.shape)
        x = x.transpose(0, 2, 3, 1) if nchw else x
        return {"output_0": np.repeat(x[..., :1], classes, axis=-1)}

    model = ServedModel(name="fake", path=Path("."), record=ConversionRecord.from_json(record),
                        signatures={SIGNATURE: Signature(SIGNATURE, inputs, outputs, run)}, backend="keras")
    return model, seen


def test_output_class_mapping(served_model, room_jpeg):
    """`--classes indoor` on an ADE20K model reports mapped classes; here: class parity."""
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import create_app
    from caffe2tf.segmentation.setup import segmentation_setup

    setup, _ = segmentation_setup(served_model)
    setup.set_output_classes(lambda labels: (labels % 2).astype(np.uint8), ["even", "odd"])
    with TestClient(create_app(served_model, segmentation=setup)) as c:
        doc = c.post(SEGMENT, content=room_jpeg).json()
        labels = np.asarray(Image.open(io.BytesIO(c.post(SEGMENT + "?output=labels", content=room_jpeg).content)))
    assert {x["name"] for x in doc["classes"]} <= {"even", "odd"}
    assert doc["protocol"]["output_classes"] == 2 and set(np.unique(labels)) <= {0, 1}


def test_setup_from_the_converted_record(served_model):
    from caffe2tf.segmentation.setup import segmentation_setup

    setup, why = segmentation_setup(served_model)
    assert setup is not None, why
    assert setup.crop_size == (113, 113) and setup.num_classes == 10 and not setup.nchw
    assert setup.class_names == INDOOR_CLASSES  # recorded by convert --classes
    # recorded in the net's (BGR) order; reported in RGB order
    assert setup.preprocessing == Preprocessing(mean=PSPNET_MEAN_BGR, scale=1.0, bgr=True)
    assert setup.describe()["preprocessing"] == {"mean_rgb": list(PSPNET_MEAN_BGR[::-1]), "scale": 1.0, "bgr": True}


def test_setup_preprocessing_orders_and_defaults():
    from caffe2tf.segmentation.setup import segmentation_setup

    model, _ = _fake_model({"preprocessing": {"mean": [1.0, 2.0, 3.0], "scale": 0.5, "bgr": True}})
    setup, _ = segmentation_setup(model)
    assert setup.preprocessing.mean_rgb == (3.0, 2.0, 1.0)
    photo = np.array([[[10, 20, 30]]], np.uint8)  # RGB
    np.testing.assert_allclose(setup.preprocessing.to_net_input(photo)[0, 0], [0.5 * 29, 0.5 * 18, 0.5 * 7])
    for record in ({}, {"preprocessing": None}, {"preprocessing": {"mean": None, "bgr": True}}):
        setup, _ = segmentation_setup(_fake_model(record)[0])
        assert setup.preprocessing == Preprocessing(mean=IMAGENET_MEAN_BGR, scale=1.0, bgr=True), record
    setup, _ = segmentation_setup(_fake_model({"preprocessing": {"mean": None, "bgr": False}})[0])
    assert setup.preprocessing.mean_rgb == IMAGENET_MEAN_BGR[::-1]  # the same photo colour, RGB net
    setup, why = segmentation_setup(_fake_model({"preprocessing": {"mean": [1.0, 2.0]}})[0])
    assert setup is None and "2 values" in why


def test_setup_follows_the_recorded_input_layout():
    from caffe2tf.segmentation.setup import record_layouts, segmentation_setup

    model, seen = _fake_model({"input_layout": "nchw"}, nchw=True)
    assert record_layouts(model.record) == (True, False)
    setup, why = segmentation_setup(model)
    assert setup is not None and setup.nchw and not setup.out_nchw, why
    out = setup.logits_fn()(np.zeros((2, 16, 16, 3), np.float32))
    assert seen == [(2, 3, 16, 16)] and out.shape == (2, 16, 16, 4)


def test_load_segmenter_overrides(model_dir, tmp_path):
    from caffe2tf.segmentation.loader import load_segmenter, protocol_kwargs

    seg = load_segmenter(str(model_dir))
    assert seg.setup.preprocessing.mean == PSPNET_MEAN_BGR and seg.num_output_classes == 10
    kwargs = protocol_kwargs(seg)
    assert kwargs["crop_size"] == (113, 113) and kwargs["preprocessing"] is seg.setup.preprocessing
    flipped = load_segmenter(str(model_dir), bgr=False).setup.preprocessing
    assert not flipped.bgr and flipped.mean_rgb == PSPNET_MEAN_BGR[::-1]  # the RGB mean is kept
    given = load_segmenter(str(model_dir), mean=(1.0, 2.0, 3.0), scale=0.5, scales=(0.5, 1.0)).setup
    assert given.preprocessing == Preprocessing(mean=(1.0, 2.0, 3.0), scale=0.5, bgr=True)  # net order
    assert given.protocol["scales"] == (0.5, 1.0)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i}" for i in range(12)))
    assert load_segmenter(str(model_dir), classes=str(names)).class_names == [f"n{i}" for i in range(10)]
    names.write_text("a\nb\n")
    with pytest.raises(Caffe2TFError, match="2 class names"):
        load_segmenter(str(model_dir), classes=str(names))


def test_gt_transform():
    from caffe2tf.segmentation.loader import LoadedSegmenter, make_gt_transform

    seg = LoadedSegmenter(model=None, setup=None, class_names=["a", "b"], num_output_classes=2,
                          to_output_classes=lambda g: np.where(g == 255, 255, g % 2))
    gt = np.array([0, 1, 2, 3, 255])
    np.testing.assert_array_equal(make_gt_transform(seg, ignore_index=255, label_offset=1, to_output=False)(gt),
                                  [255, 0, 1, 2, 255])
    np.testing.assert_array_equal(make_gt_transform(seg, ignore_index=255, label_offset=1, to_output=True)(gt),
                                  [255, 0, 1, 0, 255])


def test_cli_module_keeps_its_names(model_dir):
    import click

    from caffe2tf.cli import _segmentation
    from caffe2tf.segmentation import loader

    for name in ("LoadedSegmenter", "load_segmenter", "protocol_options", "protocol_kwargs", "engine_options",
                 "ray_kwargs", "make_gt_transform"):
        assert hasattr(_segmentation, name), name
    assert _segmentation.protocol_kwargs is loader.protocol_kwargs
    seg = _segmentation.load_segmenter(str(model_dir), mean="7,8,9", scale=None, bgr=None, base_size=None,
                                       scales="1,1.5", flip=None, classes=None)
    assert seg.setup.preprocessing.mean == (7.0, 8.0, 9.0) and seg.setup.protocol["scales"] == (1.0, 1.5)
    with pytest.raises(click.BadParameter, match="3 values"):
        _segmentation.load_segmenter(str(model_dir), mean="1,2", scale=None, bgr=None, base_size=None,
                                     scales=None, flip=None, classes=None)
