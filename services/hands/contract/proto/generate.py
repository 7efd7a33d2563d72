"""Regenerates the committed hands gRPC stubs from proto/loopd/hands/v1/hands.proto.

Run from anywhere: `python -m services.hands.contract.proto.generate` (or `make proto`). protoc names
the generated imports after the proto package (`loopd.hands.v1`), so the gRPC stub's import is rewritten
to this package.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_FILE = "loopd/hands/v1/hands.proto"
STUBS = ("hands_pb2.py", "hands_pb2.pyi", "hands_pb2_grpc.py")
OUT_DIR = Path(__file__).resolve().parent

# Generated code is not ours to type-check: the Makefile's mypy run follows imports into it.
_HEADER = "# mypy: ignore-errors\n"
_PROTOC_MODULE = "loopd.hands.v1.hands_pb2"
_PACKAGE_MODULE = "services.hands.contract.proto.hands_pb2"


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write the stubs into `out_dir` and return their paths."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_FILE}")
        generated = Path(scratch) / Path(PROTO_FILE).parent
        written = []
        for name in STUBS:
            text = (generated / name).read_text()
            text = text.replace("from loopd.hands.v1 import hands_pb2", "from services.hands.contract.proto import hands_pb2")
            text = text.replace(f"'{_PROTOC_MODULE}'", f"'{_PACKAGE_MODULE}'")
            target = out_dir / name
            target.write_text(_HEADER + text)
            written.append(target)
    return written


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in generate(out_dir):
        print(path)


if __name__ == "__main__":
    main()
