"""Writing the directory's TensorFlow SavedModel (``OUT/saved_model``)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path


def export_saved_model(model, path: Path) -> None:  # noqa: ANN001 - a keras.Model
    """SavedModel with a ``serving_default`` signature (Keras 3 ``export``)."""
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints a summary of the endpoint
        model.export(str(path), format="tf_saved_model", verbose=False)
