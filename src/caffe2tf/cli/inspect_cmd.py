"""`caffe2tf inspect`: one row per layer with shapes, parameters and multiply-adds."""
from __future__ import annotations

import json
import shutil

import click

from caffe2tf.cli.options import ignore_unknown_option, input_shape_option, parse_input_shapes


def _supported_types() -> set[str] | None:
    """Types with a built-in translator, read without importing TensorFlow."""
    try:
        from caffe2tf.backend.registry import builtin_types_declared
    except ImportError:  # translators not installed: judge by shape rules alone
        return None
    return builtin_types_declared()


def _human(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


@click.command()
@click.argument("prototxt", type=click.Path(dir_okay=False))
@click.argument("caffemodel", type=click.Path(dir_okay=False), required=False)
@input_shape_option
@ignore_unknown_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per layer instead of a table.")
def inspect(prototxt: str, caffemodel: str | None, input_shapes: tuple[str, ...],
            ignore_unknown_fields: bool, as_json: bool) -> None:
    """Show a Caffe net layer by layer: type, inputs -> outputs, NCHW output shape,
    parameter count and multiply-adds, with totals. Unsupported layer types are
    listed first. Layer types that Caffe forks use with different meanings (BN,
    Upsample) show the fork reading taken from the evidence (`BN[segnet]`); `?`
    in a shape is a dimension known only at run time (DetectionOutput's rows)."""
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.frontend.summary import summarize

    graph = load_net(prototxt, caffemodel, input_shapes=parse_input_shapes(input_shapes),
                     allow_unknown_fields=ignore_unknown_fields)
    rows = summarize(graph, _supported_types())
    unsupported: dict[str, list[str]] = {}
    for r in rows:
        if not r.supported:
            unsupported.setdefault(r.type, []).append(r.name)
    if as_json:
        click.echo(json.dumps({
            "name": graph.name,
            "inputs": [graph.values[v].blob for v in graph.inputs],
            "outputs": [graph.values[v].blob for v in graph.outputs],
            "unsupported": unsupported,
            "total_params": sum(r.params for r in rows),
            "total_macs": sum(r.macs for r in rows),
            "readings": {r.name: r.reading for r in rows if r.reading is not None},
            "layers": [r.to_json() for r in rows],
        }, indent=1))
        return
    if unsupported:
        click.secho(f"{len(unsupported)} unsupported layer type(s):", fg="red", bold=True)
        for t, names in unsupported.items():
            click.echo(f"  {t}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
        click.echo()
    width = shutil.get_terminal_size((120, 20)).columns
    name_w = max(12, min(32, max((len(r.name) for r in rows), default=0)))
    header = f"{'layer':<{name_w}} {'type':<18} {'output shape':<20} {'params':>9} {'MACs':>9}  inputs -> outputs"
    click.echo(header[:width])
    click.echo("-" * min(len(header) + 10, width))
    for r in rows:
        shape = "; ".join("x".join("?" if d is None else str(d) for d in s) if s else "?"
                          for s in r.output_shapes) or "-"
        ltype = f"{r.type}[{r.reading}]" if r.reading else r.type
        flow = f"{', '.join(r.inputs) or '-'} -> {', '.join(r.outputs) or '-'}"
        line = (f"{r.name[:name_w]:<{name_w}} {ltype[:18]:<18} {shape:<20} {_human(r.params):>9} "
                f"{_human(r.macs):>9}  {flow}")
        click.secho(line[:width], fg=None if r.supported else "red")
    click.echo("-" * min(len(header) + 10, width))
    click.echo(f"{len(rows)} layers, {_human(sum(r.params for r in rows))} parameters, "
               f"{_human(sum(r.macs for r in rows))} multiply-adds")
    _echo_readings(rows)


def _echo_readings(rows: list) -> None:
    """Which fork reading each clashing type got, and the fork aliases read as BVLC types."""
    from caffe2tf.frontend.readings import READINGS, UNDECIDED

    taken: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        if r.reading:
            taken.setdefault(r.type, {}).setdefault(r.reading, []).append(r.name)
    for ltype, by_reading in taken.items():
        for reading, names in by_reading.items():
            what = ("undecided without the caffemodel: " + " or ".join(READINGS[ltype])
                    if reading == UNDECIDED else READINGS[ltype][reading])
            click.echo(f"{ltype} read as '{reading}' ({what}): {len(names)} layer(s): "
                       f"{', '.join(names[:6])}{' ...' if len(names) > 6 else ''}")
    aliases = [f"{r.name} ({r.original_type})" for r in rows if r.original_type]
    if aliases:
        click.echo(f"fork aliases read as their BVLC type: {', '.join(aliases[:6])}{' ...' if len(aliases) > 6 else ''}")
