"""The wheel installs one namespace: atx, atx.tc, atx.rm, atx.hooks, atx.shop, nothing else."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def _lower_bounds() -> dict[str, Version]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps: list[str] = tomllib.load(f)["project"]["dependencies"]
    bounds = {}
    for line in deps:
        req = Requirement(line)
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{line}: one >= bound expected"
        bounds[canonicalize_name(req.name)] = Version(lower[0])
    return bounds


def test_min_deps_pins_every_lower_bound() -> None:
    """scripts/min-deps.txt, what scripts/test-min runs the suite on, pins each runtime
    dependency at its lower bound in pyproject.toml, and nothing else."""
    pins = {}
    for line in (ROOT / "scripts" / "min-deps.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    assert pins == _lower_bounds()


def test_lower_bounds_admit_no_runtime_the_stubs_refuse() -> None:
    """The generated stubs check their runtime: *_pb2.py refuse a protobuf older than
    their gencode, *_pb2_grpc.py a grpcio older than their generator."""
    stubs = [ROOT / "atx" / "v1", ROOT / "services" / "v1"]
    gencode = {
        Version(".".join(m))
        for folder in stubs
        for path in folder.glob("*_pb2.py")
        for m in re.findall(
            r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),",
            path.read_text(),
        )
    }
    generator = {
        Version(m)
        for folder in stubs
        for path in folder.glob("*_pb2_grpc.py")
        for m in re.findall(r"GRPC_GENERATED_VERSION = '([^']+)'", path.read_text())
    }
    assert gencode and generator
    bounds = _lower_bounds()
    assert bounds["protobuf"] >= max(gencode)
    assert bounds["grpcio"] >= max(generator)
