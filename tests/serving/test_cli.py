"""`caffe2tf serve` on bad input: one line, exit 2, before anything listens for long."""
from __future__ import annotations

import socket

from click.testing import CliRunner

from caffe2tf.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, ["serve", *args])


def test_help_names_the_defaults():
    result = _run("--help")
    assert result.exit_code == 0
    for text in ("127.0.0.1", "8501", "--workers", "--queue-size", "--max-body-mb", ":segment"):
        assert text in result.output


def test_not_a_model_directory(tmp_path):
    result = _run(str(tmp_path), "--port", "0")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "no conversion.json" in result.output


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _run(str(tmp_path), "--port", str(port))
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output


def test_bad_class_names_and_scales(tmp_path, model_dir):
    result = _run(str(model_dir), "--port", "0", "--classes", str(tmp_path / "missing.txt"))
    assert result.exit_code == 2 and "class-name file" in result.output
    short = tmp_path / "three.txt"
    short.write_text("a\nb\nc\n")
    result = _run(str(model_dir), "--port", "0", "--classes", str(short))
    assert result.exit_code == 2 and "3 class names for a model with 10 classes" in result.output
    result = _run(str(model_dir), "--port", "0", "--scales", "1,x")
    assert result.exit_code == 2 and "--scales" in result.output
