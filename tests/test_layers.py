"""The layers, checked: no module imports a layer above its own.

Bottom up: ``storage/`` (knows nothing of chat), ``cronchat.db``, ``cronchat.repos``,
``cronchat.services`` beside ``cronchat.realtime``, ``cronchat.web``, and ``cli/``. The
modules at the top of ``cronchat/`` (config, errors, models...) are shared by every layer;
``cronchat.runtime`` assembles them all, and ``cronchat.views`` (the JSON shapes) belongs
to the edge. Every import counts, at the top of a module, inside a function or under
``TYPE_CHECKING``: an import for types alone still ties a module to what it names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cronchat", "cli", "storage")

DB = "cronchat.db"
REPOS = "cronchat.repos"
SERVICES = "cronchat.services"
REALTIME = "cronchat.realtime"
WEB = "cronchat.web"
RUNTIME = "cronchat.runtime"
VIEWS = "cronchat.views"
CLI = "cli"
SHARED = "cronchat/*.py"  # the modules at the top of cronchat/


@dataclass(frozen=True, slots=True)
class Rule:
    """The modules of ``layer`` import none of ``forbidden`` (each a module or package)."""

    layer: str
    forbidden: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.layer} imports no {', '.join(self.forbidden)}"


RULES = [
    Rule("storage", ("cronchat", CLI)),
    Rule(SHARED, (REPOS, SERVICES, REALTIME, WEB, RUNTIME, VIEWS, CLI)),
    Rule(DB, (REPOS, SERVICES, REALTIME, WEB, RUNTIME, CLI)),
    Rule(REPOS, (SERVICES, REALTIME, WEB, RUNTIME, CLI)),
    Rule(SERVICES, (WEB, RUNTIME, CLI, "tornado.web", "tornado.websocket")),
    Rule(REALTIME, (WEB, RUNTIME, CLI, "tornado.web", "tornado.websocket")),
    Rule(WEB, (CLI,)),
    Rule("cronchat", (CLI,)),
]
# Broken today, and being fixed in the reshaping of issue #11: ``cronchat.models`` imports
# the database layer (its row mappers move beside the repositories), and services import
# the JSON shapes (rendered only at the edge once the notices are typed).
SHARED_DB_RULE = Rule(SHARED, (DB,))
VIEWS_RULE = Rule(SERVICES, (VIEWS,))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def imports() -> dict[str, list[tuple[int, str]]]:
    """Each module of our packages: the modules it imports, each with its line. For
    ``from a import b`` that is ``a``, or ``a.b`` (``b`` may be a module)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = module_name(path)
            names: list[tuple[int, str]] = []
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names += [(node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = _absolute(module, path.name == "__init__.py", node)
                    names += [(node.lineno, base)]
                    names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found[module] = names
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    anchor = module.split(".")
    # A package's own module is its __init__: one level up is the package itself.
    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def in_layer(module: str, layer: str) -> bool:
    if layer == SHARED:
        return (
            module.count(".") == 1
            and within(module, "cronchat")
            and module
            # The layers' own packages (``cronchat/db/__init__.py``...) are not shared modules.
            not in (RUNTIME, VIEWS, DB, REPOS, SERVICES, REALTIME, WEB)
        )
    return within(module, layer)


def breaches(rule: Rule) -> list[str]:
    """Each import that breaks ``rule``, as ``module:line imports name``."""
    found: list[str] = []
    for module, names in imports().items():
        if not in_layer(module, rule.layer):
            continue
        reported: set[int] = set()  # ``from a import b, c`` is one import: named once
        for line, name in names:
            if line not in reported and any(within(name, up) for up in rule.forbidden):
                reported.add(line)
                found.append(f"{module}:{line} imports {name}")
    return found


def test_every_layer_has_modules() -> None:
    """A renamed package would otherwise leave its rules checking nothing."""
    layers = {rule.layer for rule in [*RULES, SHARED_DB_RULE, VIEWS_RULE]}
    empty = [layer for layer in layers if not any(in_layer(m, layer) for m in imports())]
    assert not empty, f"no modules found for the layers {empty}"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.layer)
def test_no_import_points_up_a_layer(rule: Rule) -> None:
    found = breaches(rule)
    assert not found, f"{rule}, but:\n" + "\n".join(found)


def test_shared_modules_do_not_import_the_database_layer() -> None:
    found = breaches(SHARED_DB_RULE)
    assert not found, f"{SHARED_DB_RULE}, but:\n" + "\n".join(found)


def test_services_do_not_import_the_views() -> None:
    found = breaches(VIEWS_RULE)
    assert not found, f"{VIEWS_RULE}, but:\n" + "\n".join(found)
