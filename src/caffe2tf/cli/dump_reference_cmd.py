"""`caffe2tf dump-reference`: record Caffe's activations layer by layer (no TensorFlow needed).

The work is done by :mod:`caffe2tf.verification.dump_reference`, a standalone
module (NumPy, h5py, pycaffe) that can also be copied to a machine without
caffe2tf and run as ``python dump_reference.py``.
"""
from __future__ import annotations

import click

from caffe2tf.cli.diff_cmd import preprocessing_options
from caffe2tf.errors import Caffe2TFError


@click.command("dump-reference")
@click.argument("prototxt", type=click.Path(dir_okay=False))
@click.argument("caffemodel", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="reference.h5", show_default=True, type=click.Path(dir_okay=False),
              help="The caffe-reference/1 file to write.")
@preprocessing_options
@click.option("--full", is_flag=True, help="Store every output in full (no sampling of outputs over 262,144 "
                                           "elements; large files).")
def dump_reference(prototxt: str, caffemodel: str, output: str, input_specs: tuple[str, ...], mean: str | None,
                   scale: float, bgr: bool, resize: str | None, seed: int, full: bool) -> None:
    """Run the net in pycaffe one layer at a time and write every layer's outputs,
    captured right after it ran, to a reference file for `caffe2tf diff --reference`."""
    from caffe2tf.verification import dump_reference as dump

    try:
        n = dump.dump_reference(prototxt, caffemodel, output, inputs=input_specs,
                                mean=dump.parse_floats(mean, "--mean"), scale=scale, bgr=bgr,
                                resize=dump.parse_size(resize), seed=seed, full=full)
    except (dump.InputError, ImportError) as exc:
        raise Caffe2TFError(str(exc)) from None
    click.echo(f"wrote {n} layers to {output}")
