"""Loading a converted model directory's ``model.keras`` with its record (``finetune``, benchmarks).

The SavedModel side (``serve``, ``segment``, ``evaluate``, ``detect``, ``export``) is
:mod:`caffe2tf.model_dir.served`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caffe2tf.model_dir.preprocessing import Preprocessing
from caffe2tf.model_dir.record import ConversionRecord, ModelDirError, TensorRecord, read_record

log = logging.getLogger(__name__)


@dataclass
class ConvertedModel:
    """A converted model and its conversion record.

    ``predict`` takes and returns arrays in the model's own layout (NHWC for
    rank-4 tensors unless converted with ``--input-layout nchw``).
    """

    path: Path
    record: ConversionRecord
    model: Any  # keras.Model

    @classmethod
    def load(cls, path: str | Path) -> "ConvertedModel":
        p = Path(path)
        record = read_record(p)
        keras_path = p / "model.keras"
        if not keras_path.is_file():
            raise ModelDirError("model.keras is missing", file=str(p))
        import keras

        import caffe2tf.backend.layers  # noqa: F401  (registers custom layers)

        model = keras.models.load_model(keras_path, compile=False)
        return cls(path=p, record=record, model=model)

    @property
    def input_layout(self) -> str:
        return self.record.input_layout

    @property
    def inputs(self) -> list[TensorRecord]:
        return self.record.inputs

    @property
    def outputs(self) -> list[TensorRecord]:
        return self.record.outputs

    @property
    def input_shape(self) -> list[int]:
        """The first input's shape in the model's layout (e.g. [1, 473, 473, 3])."""
        return list(self.inputs[0].keras_shape)

    @property
    def preprocessing(self) -> Preprocessing | None:
        return self.record.preprocessing

    def predict(self, *arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model; returns {output blob name: array in the model's layout}."""
        feed = [np.asarray(a, dtype=np.float32) for a in arrays]
        result = self.model(feed if len(feed) > 1 else feed[0], training=False)
        if isinstance(result, dict):
            by_key = {k: np.asarray(v) for k, v in result.items()}
            out = {}
            for o in self.outputs:
                for key in (o.keras_name, o.value, o.blob):
                    if key in by_key:
                        out[o.blob] = by_key[key]
                        break
            return out or by_key
        if not isinstance(result, (list, tuple)):
            result = [result]
        return {o.blob: np.asarray(r) for o, r in zip(self.outputs, result)}
