"""Writing the directory's TensorFlow SavedModel (``OUT/saved_model``)."""
from __future__ import annotations

from pathlib import Path


def export_saved_model(model, path: Path) -> None:  # noqa: ANN001 - a keras.Model
    """SavedModel with a ``serving_default`` signature and its alias ``serve`` (the two
    Keras's ``model.export`` writes): the model traced once, every weight stored once.

    The saved object is a bare module holding the traced function and the ``tf.Variable``
    objects it captures, not the Keras model. Keras 3's ``model.export`` traces three times
    and stores each weight twice (the Keras variable and its backing ``tf.Variable``), which
    made it most of the conversion time. Tracking the Keras model instead stores each weight
    once, but its variables then reach the SavedModel only through the Keras wrappers and the
    TFLite converter cannot freeze them: it keeps a VAR_HANDLE + READ_VARIABLE pair per weight
    with no values, and the flatbuffer's output is NaN. Tracking the captured
    ``tf.Variable`` objects themselves gives the converter ordinary variables to freeze.
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

    def serve(*xs):  # noqa: ANN002, ANN202
        ys = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return {f"output_{i}": y for i, y in enumerate(ys)}

    module = tf.Module()
    module.serve = tf.function(serve, input_signature=specs, autograph=False)
    concrete = module.serve.get_concrete_function()
    module.captured_variables = list(concrete.variables)
    tf.saved_model.save(module, str(path), signatures={"serving_default": concrete, "serve": concrete})
