"""Options shared by several commands."""
from __future__ import annotations

import re

import click


def parse_input_shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """``data=1,3,473,473`` (repeatable) -> {"data": (1, 3, 473, 473)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for v in values:
        m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*(\d+(?:\s*[,x]\s*\d+)*)\s*", v)
        if not m:
            raise click.BadParameter(f"'{v}' is not NAME=N,C,H,W", param_hint="--input-shape")
        shapes[m.group(1)] = tuple(int(d) for d in re.split(r"\s*[,x]\s*", m.group(2)))
    return shapes


def parse_number_list(text: str | None, what: str, cast=float) -> tuple | None:
    """``"103.9,116.8,123.7"`` -> (103.9, 116.8, 123.7); ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return tuple(cast(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a comma-separated list of numbers", param_hint=what) from None


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=N,C,H,W",
    help="Override (or give) an input blob's NCHW shape. Repeatable.")
ignore_unknown_option = click.option(
    "--ignore-unknown-fields", is_flag=True,
    help="Skip prototxt fields our schema does not know (with a warning) instead of failing.")
