"""The wheel installs one namespace: atx, atx.tc, atx.rm, atx.hooks, atx.shop, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        table: dict[str, object] = tomllib.load(f)["tool"]["setuptools"]
    return table


def test_every_package_folder_is_listed() -> None:
    """pyproject lists packages by hand (package-dir maps folders): none may be missing."""
    config = _setuptools()
    mapping: dict[str, str] = config["package-dir"]  # type: ignore[assignment]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            dotted = ".".join((name, *rel.parts))
            # A folder mapped on its own (rm/ as atx.rm) is not also a package of atx/.
            if not any(dotted.startswith(f"{other}.") or dotted == other for other in mapping
                       if other != name and other.startswith(f"{name}.")):  # fmt: skip
                found.add(dotted)
    assert sorted(found) == sorted(config["packages"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("atx-*.whl")
    return built


def test_wheel_has_no_top_level_package_but_atx(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {
            name.split("/")[0]
            for name in archive.namelist()
            if not name.split("/")[0].endswith((".dist-info", ".data"))
        }
        names = set(archive.namelist())
    assert tops == {"atx"}
    assert {"atx/rm/py.typed", "atx/tc/py.typed", "atx/hooks/py.typed"} <= names
    assert "atx/shop/v1/order_pb2.py" in names
    assert "atx/tc/admin/static/index.html" in names


def test_installed_wheel_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies come from this interpreter's site-packages (a path entry, so its
    # editable-install hook does not run: atx can only come from the wheel).
    site = target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    (site / "site-packages" / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = (
        "import atx.rm, atx.tc, atx.hooks, atx.shop, sys;"
        "print(atx.rm.__file__);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'rm','tc','hooks','services'}))"
    )
    result = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    location, bare = result.stdout.splitlines()
    assert str(target) in location and bare == "[]"
    shown = subprocess.run(
        [str(python), "-m", "pip", "show", "-f", "atx"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    assert {f.split("/")[0] for f in files if not f.startswith(("atx-", "../"))} == {"atx"}
