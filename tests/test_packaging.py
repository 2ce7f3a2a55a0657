"""Packaging: the installed metadata declares what the code imports, its version and licence."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import rimkit

SOURCE = Path(rimkit.__file__).parent
IMPORT_TO_DISTRIBUTION = {
    "PIL": "pillow",
    "pywt": "pywavelets",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}
"""Top-level modules whose distribution has another name."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    """The top-level modules that rimkit's source imports (absolute imports only)."""
    found = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_third_party_import_is_a_declared_requirement():
    declared = {
        _normalise(re.match(r"[A-Za-z0-9._-]+", req).group(0))
        for req in metadata.requires("rimkit") or []
    }
    third_party = _imported_modules() - set(sys.stdlib_module_names) - {"rimkit"}
    needed = {_normalise(IMPORT_TO_DISTRIBUTION.get(m, m)) for m in third_party}
    assert needed - declared == set(), "add these to pyproject.toml's dependencies or extras"


def test_the_installed_version_is_the_package_version_and_mit_licensed():
    assert metadata.version("rimkit") == rimkit.__version__
    meta = metadata.metadata("rimkit")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])


def test_the_package_is_marked_typed_and_ships_the_marker():
    import importlib.resources

    assert importlib.resources.files("rimkit").joinpath("py.typed").is_file()
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    data = re.search(r"^rimkit = \[(.*)\]$", pyproject, re.M)  # [tool.setuptools.package-data]
    assert data and '"py.typed"' in data[1]
