"""docs/layers.md carries the registry's current table."""
from pathlib import Path

from caffe2tf.backend import support_table

DOC = Path(__file__).parents[2] / "docs" / "layers.md"


def test_layers_doc_is_generated_from_registry():
    text = DOC.read_text()
    assert support_table.update_document(text) == text, \
        "docs/layers.md is stale: python -m caffe2tf.backend.support_table --write docs/layers.md"


def test_every_builtin_has_a_docstring():
    for row in support_table.support_table().splitlines()[2:]:
        assert row.rstrip("| ").split("|")[-1].strip(), row
