"""Imports go one way: base -> data -> datasets -> nn -> model -> tl | pl -> workflows |
benchmark -> cli, and never into another group's private (``_``) modules. Checked on the source
(ast), function-local imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Group -> (layer, module prefixes). A module may import its own group and lower layers only;
# groups on one layer (tl and pl; workflows and benchmark) do not import each other.
GROUPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "base": (0, ("scdeal.errors", "scdeal._io", "scdeal._types", "scdeal._system")),
    "data": (1, ("scdeal.data",)),
    "datasets": (2, ("scdeal.datasets",)),
    "nn": (3, ("scdeal.nn",)),
    "model": (4, ("scdeal.model",)),
    "tl": (5, ("scdeal.tl",)),
    "pl": (5, ("scdeal.pl",)),
    # analyses and figures together on a run folder (run, screen, explain, report)
    "workflows": (6, ("scdeal.workflows",)),
    "benchmark": (6, ("scdeal.benchmark",)),
    "cli": (7, ("scdeal.cli", "scdeal.__main__")),
}
# The package root is the public facade: it loads the API lazily (by name, not by import
# statement) and imports only the base layer itself (other imports there only under
# TYPE_CHECKING, for type checkers), so every layer may import it (e.g. __version__).
FACADE = "scdeal"


def group_of(module: str) -> str:
    matches = [(len(p), g) for g, (_, prefixes) in GROUPS.items() for p in prefixes
               if module == p or module.startswith(p + ".")]
    if module == FACADE:
        return "facade"
    if not matches:
        raise AssertionError(f"{module} belongs to no layer; add it to GROUPS")
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, scdeal module) for every import of the package in ``source``."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    type_checking = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and ast.unparse(block.test) == "TYPE_CHECKING" for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if module == FACADE and id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "scdeal"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != "scdeal":
                continue
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((node.lineno, name if _is_module(name) else base))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own = group_of(module)
    out = []
    for line, target in imported_modules(source, module, is_package):
        other = group_of(target)
        if other == own:
            continue
        if own == "facade":
            ok = other == "base"
        else:
            ok = other == "facade" or GROUPS[other][0] < GROUPS[own][0]
        if not ok:
            out.append(f"{module}:{line} imports {target} ({own} -> {other})")
        elif other not in ("base", "facade") and any(
                part.startswith("_") and part != "__main__" for part in target.split(".")[1:]):
            out.append(f"{module}:{line} imports {target}, private to {other}")
    return out


def test_every_import_goes_down_the_layers():
    found = []
    for path in sorted((SRC / "scdeal").rglob("*.py")):
        found += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == []


@pytest.mark.parametrize(("module", "source", "bad"), [
    ("scdeal.tl.explain", "def f():\n    from .. import pl\n", "scdeal.pl"),
    ("scdeal.model.config", "from ..tl import trajectory\n", "scdeal.tl"),
    ("scdeal.data.genes", "import scdeal.model\n", "scdeal.model"),
    ("scdeal.workflows.report", "from ..cli import main\n", "scdeal.cli"),
    ("scdeal", "from .model import ScDEAL\n", "scdeal.model"),
    ("scdeal.benchmark.baselines", "from ..model._prepare import resample\n",
     "scdeal.model._prepare"),
])
def test_the_check_catches_upward_and_sideways_imports(module, source, bad):
    is_package = module == "scdeal"
    assert [v for v in violations(source, module, is_package) if f"imports {bad}" in v]


def test_the_check_allows_downward_and_own_group_imports():
    assert violations("from ..data.labels import binary_labels\nfrom . import prepare\n",
                      "scdeal.model._model") == []
    facade = "from .errors import ScdealError\nif TYPE_CHECKING:\n    from .model import ScDEAL\n"
    assert violations(facade, "scdeal", is_package=True) == []
    assert violations("from .. import __version__\n", "scdeal.model._model") == []


# The CLI parses arguments and prints: it reaches the package only through the public
# namespaces (their __init__), never a module that trains, reads, writes or scores, and it
# calls none of those steps itself.
CLI_MAY_IMPORT = {"scdeal", "scdeal.errors", "scdeal._types", "scdeal._system", "scdeal.data",
                  "scdeal.datasets", "scdeal.model", "scdeal.tl", "scdeal.pl",
                  "scdeal.workflows", "scdeal.benchmark"}
CLI_MUST_NOT_CALL_METHOD = {"fit", "predict", "predict_proba", "predict_file", "save",
                            "write_h5ad", "to_csv", "write_text", "write_bytes", "read_h5ad"}
CLI_MUST_NOT_CALL = {"open", "atomic_dir", "atomic_path"}


def cli_violations(source: str, module: str, is_package: bool) -> list[str]:
    found = [f"{module}:{line} imports {name}"
             for line, name in imported_modules(source, module, is_package)
             if name not in CLI_MAY_IMPORT and group_of(name) != "cli"]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            method = isinstance(func, ast.Attribute)
            name = func.attr if method else getattr(func, "id", None)
            if name in (CLI_MUST_NOT_CALL_METHOD if method else CLI_MUST_NOT_CALL):
                found.append(f"{module}:{node.lineno} calls {name}()")
    return found


def test_the_cli_holds_no_training_io_or_scoring():
    found = []
    for path in sorted((SRC / "scdeal" / "cli").rglob("*.py")):
        found += cli_violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == []


@pytest.mark.parametrize(("source", "bad"), [
    ("from ..model.backed import read_rows\n", "imports scdeal.model.backed"),
    ("from .._io import atomic_dir\n", "imports scdeal._io"),
    ("def f(model, a):\n    model.fit(a, 'x')\n", "calls fit()"),
    ("def f(a, p):\n    a.write_h5ad(p)\n", "calls write_h5ad()"),
    ("def f(p):\n    return open(p)\n", "calls open()"),
])
def test_the_cli_check_catches_logic(source, bad):
    assert [v for v in cli_violations(source, "scdeal.cli._run", False) if bad in v]
