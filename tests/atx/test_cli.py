"""The ``atx`` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import atx
from atx.cli import main


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert atx.__version__ in capsys.readouterr().out


def test_help_lists_the_available_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atx.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "usage: atx" in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "atx"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("atx ")
