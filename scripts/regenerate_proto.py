#!/usr/bin/env python3
"""Regenerate src/caffe2tf/caffe_proto/caffe_pb2.py from caffe.proto.

Needs the dev dependency grpcio-tools (it bundles protoc):

    python scripts/regenerate_proto.py            # rewrite the stubs
    python scripts/regenerate_proto.py --check    # exit 1 if they are stale
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent.parent / "src" / "caffe2tf" / "caffe_proto"


def generate(out_dir: Path) -> Path:
    from grpc_tools import protoc  # dev dependency

    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", str(PROTO_DIR / "caffe.proto")])
    if rc != 0:
        raise SystemExit(f"protoc failed with status {rc}")
    return out_dir / "caffe_pb2.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed stubs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp)).read_text()
    committed = PROTO_DIR / "caffe_pb2.py"
    if args.check:
        if not committed.exists() or committed.read_text() != fresh:
            print(f"{committed} is stale: run scripts/regenerate_proto.py", file=sys.stderr)
            return 1
        return 0
    committed.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
