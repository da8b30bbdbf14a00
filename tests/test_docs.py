"""The documentation site's API reference (docs/api/*.rst) against the code.

Every public name (each namespace's ``__all__``) is listed in an autosummary table of its
namespace's page, and every public function and class listed there has an ``Examples``
section in its own docstring (they run as doctests with ``--doctest-modules``). The site
itself is built by the README's Development command; CI builds it with warnings as errors.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api"
NAMESPACES = ["scdeal", "scdeal.data", "scdeal.datasets", "scdeal.model", "scdeal.tl",
              "scdeal.pl", "scdeal.workflows", "scdeal.benchmark", "scdeal.nn"]
EXAMPLES = re.compile(r"^Examples\n-{3,}$", re.MULTILINE)


def autosummary_entries(text: str) -> list[tuple[str, str]]:
    """(module, name) of every entry of every ``autosummary`` table in a reST page, the module
    being the ``currentmodule`` in force."""
    entries, module, in_table = [], None, False
    for line in text.splitlines():
        if m := re.match(r"\.\. (?:current)?module:: (\S+)", line):
            module, in_table = m.group(1), False
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table:
            if not line.strip() or re.match(r"\s+:\w[\w-]*:", line):
                continue  # blank lines and the directive's options
            if line.startswith("   "):
                entries.append((module, line.strip()))
            else:
                in_table = False
    return entries


@functools.cache
def listed() -> dict[str, set[str]]:
    """Namespace -> the names its autosummary tables list, over every page of docs/api."""
    found: dict[str, set[str]] = {}
    for page in sorted(API.glob("*.rst")):
        for module, name in autosummary_entries(page.read_text(encoding="utf-8")):
            assert module is not None, f"{page.name}: an autosummary before any currentmodule"
            full = f"{module}.{name}"
            namespace, _, short = full.rpartition(".")
            found.setdefault(namespace, set()).add(short)
    return found


def is_function_or_class(obj) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj) or (
        callable(obj) and hasattr(obj, "__wrapped__"))  # functools.cache and friends


def test_parser_reads_options_and_entries():
    text = (".. currentmodule:: pkg\n\nTitle\n-----\n\n.. autosummary::\n   :toctree: generated\n"
            "   :nosignatures:\n\n   f\n   C\n\nText.\n\n.. autosummary::\n\n   g\n")
    assert autosummary_entries(text) == [("pkg", "f"), ("pkg", "C"), ("pkg", "g")]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_public_name_is_in_the_api_reference(namespace):
    module = importlib.import_module(namespace)
    pages = listed()
    assert namespace in pages, f"docs/api has no autosummary table of {namespace}"
    missing = []
    for name in module.__all__:
        if name.startswith("__"):
            continue  # __version__
        obj = getattr(module, name)
        if inspect.ismodule(obj):  # a namespace of its own: it needs its own page
            if obj.__name__ not in pages:
                missing.append(f"{name} (a namespace without a page)")
        elif name not in pages[namespace]:
            missing.append(name)
    assert not missing, f"public names of {namespace} not in docs/api: {missing}"
    extra = pages[namespace] - set(module.__all__)
    assert not extra, f"docs/api lists names that are not in {namespace}.__all__: {sorted(extra)}"


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_listed_function_and_class_has_an_example(namespace):
    module = importlib.import_module(namespace)
    without = []
    for name in sorted(listed().get(namespace, ())):
        obj = getattr(module, name)
        if not is_function_or_class(obj):
            continue  # constants and type aliases
        own = obj.__doc__ if isinstance(obj.__doc__, str) else ""
        if not EXAMPLES.search(inspect.cleandoc(own)):
            without.append(name)
    assert not without, (f"{namespace}: public functions and classes without an Examples "
                         f"section in their docstring: {without}")
