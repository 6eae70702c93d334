"""The supported-layer table of ``docs/layers.md``, generated from the registry.

    python -m caffe2tf.backend.support_table            # print the table
    python -m caffe2tf.backend.support_table --write docs/layers.md
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from caffe2tf.backend import registry

BEGIN = "<!-- BEGIN GENERATED: python -m caffe2tf.backend.support_table --write docs/layers.md -->"
END = "<!-- END GENERATED -->"


def _summary(fn) -> str:
    doc = inspect.getdoc(fn) or ""
    first = doc.split("\n\n")[0]
    return " ".join(first.split()).replace("|", "\\|")


def support_table() -> str:
    """Markdown table: Caffe type, module, how it is converted (the translator's docstring)."""
    rows = ["| Caffe type | module | conversion |", "|---|---|---|"]
    for t, fn in sorted(registry.builtin_translators().items()):
        module = fn.__module__.rsplit(".", 1)[-1]
        rows.append(f"| `{t}` | `{module}.py` | {_summary(fn)} |")
    return "\n".join(rows) + "\n"


def update_document(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    if BEGIN not in text or END not in text:
        raise ValueError("the document has no generated-table markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{support_table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="update this markdown file in place")
    args = ap.parse_args(argv)
    if args.write:
        args.write.write_text(update_document(args.write.read_text()))
    else:
        print(support_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
