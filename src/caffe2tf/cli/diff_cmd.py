"""`caffe2tf diff`: compare the converted model with Caffe, layer by layer, and name the culprit."""
from __future__ import annotations

import json
from pathlib import Path

import click

from caffe2tf.cli.options import ignore_unknown_option, input_shape_option, parse_input_shapes


def preprocessing_options(fn):
    """``--input`` and the Caffe-style preprocessing flags (shared with dump-reference)."""
    for opt in reversed([
        click.option("--input", "input_specs", multiple=True, metavar="IMAGE|ARRAY.npy|random",
                     help="Net input: an image (preprocessed with the flags below), an NCHW .npy array, or "
                          "'random' (default; standard normal). BLOB=... for nets with several inputs."),
        click.option("--mean", metavar="M1,M2,M3",
                     help="Per-channel mean subtracted from images, in the net's channel order."),
        click.option("--scale", type=float, default=1.0, show_default=True,
                     help="Multiply images by this after subtracting the mean."),
        click.option("--bgr", is_flag=True, help="Swap images from RGB to BGR (most Caffe nets)."),
        click.option("--resize", metavar="H,W", help="Resize images (and random inputs) to HxW, reshaping the net."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of random inputs."),
    ]):
        fn = opt(fn)
    return fn


def input_options(input_specs, mean, scale, bgr, resize, seed):
    from caffe2tf.verification import dump_reference as dump
    from caffe2tf.verification.sources import InputOptionError, InputOptions

    try:
        parsed_mean = dump.parse_floats(mean, "--mean")
        parsed_resize = dump.parse_size(resize)
    except dump.InputError as exc:
        raise InputOptionError(str(exc)) from None
    return InputOptions(specs=tuple(input_specs), mean=tuple(parsed_mean) if parsed_mean else None,
                        scale=scale, bgr=bgr, resize=parsed_resize, seed=seed)


@click.command()
@click.argument("prototxt", type=click.Path(dir_okay=False))
@click.argument("caffemodel", type=click.Path(dir_okay=False))
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False), metavar="FILE.h5",
              help="Compare with a recorded reference (caffe-reference/1, e.g. from `caffe2tf dump-reference`).")
@click.option("--caffe", "use_caffe", is_flag=True, help="Compare with live pycaffe (needs `import caffe`).")
@click.option("--builtin", "use_builtin", is_flag=True,
              help="Compare with the built-in NumPy Caffe-semantics executor. "
                   "Default: pycaffe when importable, else built-in.")
@preprocessing_options
@click.option("--tolerance", type=float, metavar="REL",
              help="Per-output max relative error (default 1e-5; 2e-4 for nets of 50+ layers).")
@click.option("--folded", is_flag=True, help="Diff the folded model (BN/Scale merged into convolutions).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write a self-contained HTML report with the error plot.")
@click.option("--rows", type=int, metavar="N", help="Show at most N table rows (around the first divergence).")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False), metavar="FILE.py",
              help="Load user translators from a Python file. Repeatable.")
@input_shape_option
@ignore_unknown_option
@click.pass_context
def diff(ctx: click.Context, prototxt: str, caffemodel: str, reference_path: str | None, use_caffe: bool,
         use_builtin: bool, input_specs: tuple[str, ...], mean: str | None, scale: float, bgr: bool,
         resize: str | None, seed: int, tolerance: float | None, folded: bool, json_path: str | None,
         html_path: str | None, rows: int | None, plugins: tuple[str, ...], input_shapes: tuple[str, ...],
         ignore_unknown_fields: bool) -> None:
    """Run the converted model with every Caffe layer output exposed, compare each
    with a reference (a recorded file, live Caffe, or the built-in executor) and
    name the first layer whose inputs agree but whose output does not.

    Exit status: 0 when the conversion is correct, 1 when a layer is wrong, 2 for bad input.
    """
    from caffe2tf.verification.diff import diff_net
    from caffe2tf.verification.report_terminal import render_terminal
    from caffe2tf.verification.sources import choose_source

    if tolerance is not None and not tolerance > 0:
        raise click.BadParameter("must be > 0", param_hint="--tolerance")
    source = choose_source(reference_path, use_caffe, use_builtin)
    options = input_options(input_specs, mean, scale, bgr, resize, seed)
    if plugins:
        from caffe2tf.backend import registry

        registry.load_plugins(plugins)
    report = diff_net(prototxt, caffemodel, source=source, reference_path=reference_path, input_options=options,
                      tolerance=tolerance, folded=folded, input_shapes=parse_input_shapes(input_shapes),
                      allow_unknown_fields=ignore_unknown_fields)
    click.echo(render_terminal(report, max_rows=rows))
    if json_path:
        Path(json_path).write_text(json.dumps(report.to_dict(), indent=1))
        click.echo(f"wrote {json_path}")
    if html_path:
        from caffe2tf.verification.report_html import write_html

        write_html(report, html_path)
        click.echo(f"wrote {html_path}")
    ctx.exit(report.exit_status)
