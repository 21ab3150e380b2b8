"""The stale-stubs check: fails when a .proto changed and the stubs did not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_proto.py"


def _check(proto_dir: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--check",
            "--proto-dir",
            str(proto_dir),
            "--out-dir",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_tree(tmp_path: Path) -> tuple[Path, Path]:
    proto = tmp_path / "proto"
    out = tmp_path / "out"
    shutil.copytree(ROOT / "proto", proto)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "atx" / "v1", out / "atx" / "v1", ignore=ignore)
    shutil.copytree(ROOT / "services" / "v1", out / "services" / "v1", ignore=ignore)
    return proto, out


def test_committed_stubs_are_up_to_date() -> None:
    result = _check(ROOT / "proto", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_a_proto_changes(tmp_path: Path) -> None:
    proto, out = _copy_tree(tmp_path)
    assert _check(proto, out).returncode == 0
    types = proto / "atx" / "v1" / "types.proto"
    types.write_text(
        types.read_text() + "\nmessage AddedWithoutRegenerating {\n  string x = 1;\n}\n"
    )
    result = _check(proto, out)
    assert result.returncode == 1
    assert "stale: atx/v1/types_pb2.py" in result.stdout


def test_check_fails_when_a_proto_is_added(tmp_path: Path) -> None:
    proto, out = _copy_tree(tmp_path)
    (proto / "atx" / "v1" / "extra.proto").write_text(
        'syntax = "proto3";\n\npackage atx.v1;\n\nmessage Extra {\n  string x = 1;\n}\n'
    )
    result = _check(proto, out)
    assert result.returncode == 1
    assert "missing: atx/v1/extra_pb2.py" in result.stdout
