"""The `caffe2tf` command line.

Commands live in their own modules and are imported only when used, so
``caffe2tf inspect`` does not pay for importing TensorFlow.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import click

from caffe2tf import __version__
from caffe2tf.cli import _tf_banner
from caffe2tf.errors import Caffe2TFError

# TensorFlow's C++ start-up chatter (the absl and oneDNN banners) is not for our users:
# silenced unless they set the variable themselves or ask for -vv. TensorFlow reads it
# when it is first imported, which no command does before `cli()` below has run.
_USER_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN graph rewrites on by default on some x86 CPUs (AVX-512 VNNI
# and newer); there PSPNet-50 ran 1.60 s with them against 1.09 s with Eigen's kernels
# (issue 15), and on an AVX2 EPYC forcing them on cost 19-29 % CPU. Our own commands
# therefore run Eigen's kernels unless the user chose otherwise; oneDNN's results differ
# from Eigen's by 2.5e-5 relative on PSPNet-50 (within the 2e-4 whole-net tolerance).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# The lines TF_CPP_MIN_LOG_LEVEL does not reach (absl's preamble, the oneDNN notice for a
# user who turned oneDNN on) are held back from TensorFlow's first import; not when the
# user set the log level themselves, and -vv undoes it in `cli()`.
if not _USER_TF_LOG_LEVEL:
    _tf_banner.install()

# command name -> "module:function" (imported on demand)
COMMANDS: dict[str, str] = {
    "inspect": "caffe2tf.cli.inspect_cmd:inspect",
    "convert": "caffe2tf.cli.convert_cmd:convert",
    "diff": "caffe2tf.cli.diff_cmd:diff",
    "dump-reference": "caffe2tf.cli.dump_reference_cmd:dump_reference",
    "segment": "caffe2tf.cli.segment_cmd:segment",
    "detect": "caffe2tf.cli.detect_cmd:detect",
    "evaluate": "caffe2tf.cli.evaluate_cmd:evaluate",
    "finetune": "caffe2tf.cli.finetune_cmd:finetune",
    "serve": "caffe2tf.cli.serve_cmd:serve",
    "export": "caffe2tf.cli.export_cmd:export",
    "dataset": "caffe2tf.cli.dataset_cmd:dataset",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._spec_exists(name)]

    @staticmethod
    def _spec_exists(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._spec_exists(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):  # one-line errors, exit 2, for bad input
        try:
            return super().invoke(ctx)
        except Caffe2TFError as exc:
            click.echo(f"caffe2tf: error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="caffe2tf")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Convert Caffe models to TensorFlow/Keras that compute the same numbers,
    show layer by layer where a conversion differs, and put the result to use.

    \b
    Typical path:
      caffe2tf inspect deploy.prototxt weights.caffemodel
      caffe2tf convert deploy.prototxt weights.caffemodel -o out/ --verify
      caffe2tf diff deploy.prototxt weights.caffemodel --builtin
      caffe2tf segment out/ photo.jpg -o seg/
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    if verbose >= 2 and not _USER_TF_LOG_LEVEL:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        _tf_banner.uninstall()
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    if verbose and not quiet and ctx.invoked_subcommand not in (None, "inspect", "dump-reference", "dataset"):
        from caffe2tf.devices import device_summary  # imports TensorFlow, which the command needs anyway

        logging.getLogger("caffe2tf").info("%s", device_summary())


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="caffe2tf")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
