"""Issue 17's empty-net family through the commands users type: one line naming the
file on stderr, exit 2, no traceback and no partial output."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from caffe2tf.cli import cli
from caffe2tf.frontend.caffemodel_writer import write_caffemodel
from empty_nets import EMPTY_NETS

COMMANDS = {
    "inspect": lambda net, model, out: ["inspect", str(net)],
    "inspect --json": lambda net, model, out: ["inspect", "--json", str(net)],
    "convert": lambda net, model, out: ["convert", str(net), str(model), "-o", str(out)],
    "diff --builtin": lambda net, model, out: ["diff", "--builtin", str(net), str(model)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("text, fragment", [c[1:] for c in EMPTY_NETS], ids=[c[0] for c in EMPTY_NETS])
def test_empty_net_family(tmp_path: Path, command: str, text: str, fragment: str) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(text)
    model = tmp_path / "w.caffemodel"
    write_caffemodel(model, [])
    out = tmp_path / "converted"
    res = CliRunner().invoke(cli, COMMANDS[command](net, model, out))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output and str(net) in lines[0] and fragment in lines[0], res.output
    assert not out.exists()  # nothing written
