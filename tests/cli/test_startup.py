"""Start-up: `inspect` and every `--help` never import TensorFlow; commands that do
import it print none of its C++ banner lines unless asked with -vv."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caffe2tf.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT.parent / "shared" / "caffe_reference"
BANNER = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations")

PROBE = """
import sys
from caffe2tf.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
else:
    code = 0
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
sys.exit(code)
"""


# What a user gets who set neither: our commands then choose both. (A user who sets
# TF_ENABLE_ONEDNN_OPTS=1 is a case of its own, below.)
CHOSEN_BY_US = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN_BY_US} | (env or {})
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in COMMANDS],
                         ids=lambda a: " ".join(a))
def test_help_does_not_import_tensorflow(argv):
    run = _run(*argv)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Usage:" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "HEAVY:", run.stdout[-500:]


def test_inspect_does_not_import_tensorflow():
    case = REF / "conv_basic"
    run = _run("inspect", str(case / "net.prototxt"), str(case / "weights.caffemodel"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "HEAVY:"


@pytest.mark.parametrize("user_env", [{}, {"TF_ENABLE_ONEDNN_OPTS": "1"}], ids=["defaults", "onednn-on"])
def test_no_tensorflow_banner_unless_vv(tmp_path, user_env):
    """With oneDNN turned on by the user, TensorFlow prints absl's preamble and its oneDNN
    notice at import even at TF_CPP_MIN_LOG_LEVEL=2; those are held back too (_tf_banner)."""
    case = REF / "conv_basic"
    args = ("convert", str(case / "net.prototxt"), str(case / "weights.caffemodel"), "--no-saved-model")
    quiet = _run(*args, "-o", str(tmp_path / "a"), env=user_env)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "tensorflow" in quiet.stdout.splitlines()[-1], "this command does load TensorFlow"
    noise = [line for line in quiet.stderr.splitlines() if any(b in line for b in BANNER)]
    assert not noise, noise
    loud = _run("-vv", *args, "-o", str(tmp_path / "b"), env=user_env)
    assert loud.returncode == 0, loud.stderr[-2000:]
    # -vv hands TensorFlow's own logging back (its INFO lines, here the CPU feature note or
    # the absl preamble, whichever this build prints)
    assert len(loud.stderr) > len(quiet.stderr)


FILTER_PROBE = """
import os, sys
from caffe2tf.cli import _tf_banner
with _tf_banner.without_banner():
    os.write(2, b"keep 1\\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    print("keep 2 (python)", file=sys.stderr)
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\\n")
    os.write(2, b"keep 3")
print("after", file=sys.stderr)
"""


def test_banner_filter_keeps_everything_else_in_order():
    """Only the banner lines are dropped; other output of the import (an error, a Python
    warning) comes back in order, a last line without newline included."""
    run = subprocess.run([sys.executable, "-c", FILTER_PROBE], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "keep 1\nkeep 2 (python)\nkeep 3after\n", repr(run.stderr)
