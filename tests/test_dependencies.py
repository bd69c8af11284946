"""pyproject.toml declares what the code imports, and the package declares nothing it does not import.

An undeclared import works on the developer's machine (something else pulled
it in: pandas came with shap) and breaks a clean install the day that other
package drops it; a declared package nothing imports costs every install its
download (and an air-gapped wheelhouse its size). So both directions are
checked here, over the import statements themselves (ast: lazy imports inside
functions and under ``TYPE_CHECKING`` count, since a type checker needs them too).

Exempt, on purpose:

- imports guarded by ``try: ... except ImportError`` (an optional speed-up
  such as uvloop, or a library mlbox can do without);
- `BROUGHT_BY_THE_USER`: the model flavors of libraries mlbox never needs
  itself. A flavor imports its library only when the user's model is of it
  (detection checks ``sys.modules`` first), so the user's environment has it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = [REPO / "mlbox", REPO / "store", REPO / "tui"]
"""The installed package: mlbox/, and store/ and tui/ (reached through the symlinks in mlbox/)."""

DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "pynvml": "nvidia-ml-py",
    "textual_plotext": "textual-plotext",
    "sqlite_utils": "sqlite-utils",
    "jupyter_client": "jupyter-client",
    "_pytest": "pytest",
    "PIL": "pillow",
}
"""Import names whose distribution is named otherwise (the rest differ only by ``_`` and ``-``)."""

BROUGHT_BY_THE_USER = {"lightgbm", "xgboost", "onnx", "onnxruntime"}
"""Flavors for models of these libraries: imported only when the user's model is one of them."""

USED_WITHOUT_IMPORT = {"httptools": "uvicorn's HTTP parser, chosen by uvicorn when it is installed"}
"""Declared dependencies that no mlbox module imports, each with the reason it is still needed."""

FIRST_PARTY = {"mlbox", "tests", "store", "tui"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(import_name: str) -> str:
    """The distribution that provides a top-level import name."""
    return _normalize(DISTRIBUTION.get(import_name, import_name))


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return _normalize(match.group(1))


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """The names in [project].dependencies, and in each extra (``mlbox[x]`` expanded)."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    core = {_requirement_name(r) for r in project["dependencies"]}
    raw = project.get("optional-dependencies", {})
    extras = {name: {_requirement_name(r) for r in reqs} for name, reqs in raw.items()}
    for name, reqs in raw.items():
        for r in reqs:
            inner = re.fullmatch(r"\s*mlbox\[([a-z0-9,_-]+)\]\s*", r)
            if inner:
                extras[name].discard("mlbox")
                for other in inner.group(1).split(","):
                    extras[name] |= extras[other]
    return core, extras


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in the body of a ``try`` that catches ImportError (or a parent class of it)."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = handler.type
                names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
                if any(
                    isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names
                ):
                    return True
        child, parent = parent, parents.get(parent)
    return False


def imports(path: Path, *, guarded: bool = False) -> Iterator[tuple[str, int]]:
    """The top-level third-party names ``path`` imports, with their line; those under an ImportError
    guard only with ``guarded`` (they count as a use, not as a need)."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if not guarded and _guarded(node, parents):
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in FIRST_PARTY and top != "__future__":
                yield top, node.lineno


def _files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            # mlbox/store and mlbox/tui are symlinks to store/ and tui/, read once from there
            if not any(part.is_symlink() for part in [path, *path.parents] if part != REPO):
                yield path


def undeclared(roots: list[Path], allowed: set[str]) -> list[str]:
    found = []
    for path in _files(roots):
        for name, line in imports(path):
            if distribution(name) not in allowed and name not in BROUGHT_BY_THE_USER:
                found.append(f"{path.relative_to(REPO)}:{line}: {name} ({distribution(name)})")
    return found


def test_every_import_of_the_package_is_declared() -> None:
    """The core dependencies, or the notebook extra (the notebooks service's own imports)."""
    core, extras = declared()
    missing = undeclared(PACKAGE, core | extras["notebook"])
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)


def test_every_declared_dependency_is_imported() -> None:
    core, _ = declared()
    used = {distribution(name) for path in _files(PACKAGE) for name, _ in imports(path, guarded=True)}
    unused = sorted(core - used - set(USED_WITHOUT_IMPORT))
    assert not unused, f"declared in [project].dependencies but imported nowhere: {unused}"


def test_every_import_of_the_tests_is_declared() -> None:
    """Tests may also use the test extra; an importorskip of an optional library is not an import."""
    core, extras = declared()
    missing = undeclared([REPO / "tests"], core | set().union(*extras.values()))
    assert not missing, "imported by tests but not declared:\n" + "\n".join(missing)


def test_the_checker_sees_lazy_imports_and_skips_guarded_ones(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import numpy as np\n"
        "if TYPE_CHECKING:\n    import pandas as pd\n"
        "def f():\n    import sklearn.linear_model\n"
        "try:\n    import uvloop\nexcept ImportError:\n    uvloop = None\n"
    )
    assert sorted(n for n, _ in imports(module)) == ["numpy", "pandas", "sklearn"]
    assert "uvloop" in {n for n, _ in imports(module, guarded=True)}
    assert distribution("sklearn") == "scikit-learn" and distribution("textual_plotext") == "textual-plotext"
