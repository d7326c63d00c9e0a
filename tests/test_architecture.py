"""The shape of the house (issue 13, /work/shared/STYLE.md), checked on the import graph and module sizes.

The graph is read from the source (AST), not by importing, over bot/, handlers/, integrations/ and stand_ins/:

* no import cycle among module-level imports. Module level includes `if TYPE_CHECKING:` blocks (a handler and
  its blocks importing each other's types is the cycle this rule exists for) and class bodies; imports inside
  functions are lazy and left out of the cycle check, but every other rule applies to them too. A module's
  import of its own parent packages is not an edge: Python initialises the parents before the module runs.
* `bot/` (the platform) imports no capability (handlers) and no stand-in; the one exception is the console,
  imported lazily by `bot/cli.py` (a production install has no stand_ins/ and says so in one line).
* `integrations/` imports none of bot, handlers and stand_ins: they are thin clients over real APIs.
* no production module (bot, handlers, integrations) imports stand_ins.
* a module of capability `handlers.X` imports another capability `Y` through its package only (`handlers.Y`,
  whose `__init__` is Y's interface), never `handlers.Y.<module>`. `handlers.capabilities`, the composition root
  that registers every capability with the platform, is the one module that may.

And no module of bot/, handlers/ or integrations/ is longer than MAX_LINES, except those in OVERSIZED.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("bot", "handlers", "integrations", "stand_ins")
PRODUCTION = ("bot", "handlers", "integrations")

#: (importer, imported) pairs allowed despite the rules above, each with its reason.
ALLOWED = {
    (
        "bot.cli",
        "stand_ins.console_runner",
    ): "`mira-bot console` runs the console, imported lazily (production: a message)",
}
COMPOSITION_ROOT = "handlers.capabilities"

MAX_LINES = 400
#: Modules allowed over MAX_LINES today, with why and the ceiling each may not pass. Remove an entry when its
#: module is split; the test fails on an entry that is no longer needed, so the list only shrinks.
OVERSIZED: dict[str, tuple[int, str]] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the module imported (a package when a name of its __init__ is imported)
    lazy: bool  # inside a function
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path = ROOT, layers: Iterable[str] = LAYERS) -> dict[str, tuple[str, bool]]:
    """Module name → (source, is_package) for every module of `layers`."""
    sources = {}
    for layer in layers:
        for path in sorted((root / layer).rglob("*.py")):
            sources[module_name(path, root)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return sources


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """The internal modules `name` imports, each once per statement."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []

    def add(target: str, lazy: bool, line: int) -> None:
        if target in known and target != name and target not in _ancestors(name):
            found.append(Import(name, target, lazy, line))

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    for target in [*_ancestors(alias.name), alias.name]:
                        add(target, lazy, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base_parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*base_parts, *([child.module] if child.module else [])])
                else:
                    base = child.module or ""
                for target in [*_ancestors(base), base]:
                    add(target, lazy, child.lineno)
                for alias in child.names:
                    add(f"{base}.{alias.name}", lazy, child.lineno)  # a submodule, when it is one
            visit(child, inner)

    visit(ast.parse(source, filename=name), lazy=False)
    return found


def _layer(module: str) -> str:
    return module.split(".")[0]


def _capability(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "handlers" and len(parts) > 1 and parts[1] != "capabilities" else None


def rule_violations(imports: Iterable[Import]) -> list[str]:
    """One problem per imported module; `import a.b.c` is judged on `a.b.c`, not on the packages it runs."""
    imports = list(imports)
    deepest = {(imp.importer, imp.line): imp.target for imp in imports}
    for imp in imports:
        key = (imp.importer, imp.line)
        if len(imp.target) > len(deepest[key]):
            deepest[key] = imp.target
    problems = []
    for imp in imports:
        if (imp.importer, imp.target) in ALLOWED:
            continue
        if deepest[(imp.importer, imp.line)].startswith(imp.target + "."):
            continue  # a parent package of what the statement imports
        where = f"{imp.importer}:{imp.line} imports {imp.target}"
        src, dst = _layer(imp.importer), _layer(imp.target)
        if src == "bot" and dst in ("handlers", "stand_ins"):
            problems.append(f"{where}: the platform (bot/) never imports {dst}/")
        elif src == "integrations" and dst in ("bot", "handlers", "stand_ins"):
            problems.append(f"{where}: integrations/ are thin clients and import no {dst}/")
        elif src in PRODUCTION and dst == "stand_ins":
            problems.append(f"{where}: production code never imports the stand-ins")
        mine, theirs = _capability(imp.importer), _capability(imp.target)
        if (
            imp.importer != COMPOSITION_ROOT
            and mine is not None
            and theirs is not None
            and mine != theirs
            and imp.target != f"handlers.{theirs}"
        ):
            problems.append(f"{where}: use the package handlers.{theirs} (its __init__ is the interface)")
    return problems


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over module-level imports."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.lazy:
            graph.setdefault(imp.importer, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def graph_of(sources: Mapping[str, tuple[str, bool]]) -> list[Import]:
    known = set(sources)
    return [imp for name, (src, pkg) in sources.items() for imp in imports_of(name, src, pkg, known)]


# --- the house --------------------------------------------------------------------------------------------------


def test_the_import_graph_has_no_cycle() -> None:
    found = cycles(graph_of(read_sources()))
    assert found == [], "import cycles (module level, TYPE_CHECKING included): " + "; ".join(
        " ↔ ".join(c) for c in found
    )


def test_imports_follow_the_dependency_rule() -> None:
    assert rule_violations(graph_of(read_sources())) == []


def test_the_allowed_exceptions_are_still_needed() -> None:
    """An allowance nobody uses any more is removed, so the list only shrinks."""
    used = {(imp.importer, imp.target) for imp in graph_of(read_sources())}
    assert set(ALLOWED) <= used


def test_no_module_of_the_product_is_longer_than_the_limit() -> None:
    too_long, stale = [], []
    for layer in PRODUCTION:
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            lines = len(path.read_text(encoding="utf-8").splitlines())
            ceiling, _reason = OVERSIZED.get(rel, (MAX_LINES, ""))
            if lines > ceiling:
                too_long.append(f"{rel}: {lines} lines (limit {ceiling})")
            elif rel in OVERSIZED and lines <= MAX_LINES:
                stale.append(f"{rel}: {lines} lines now, remove it from OVERSIZED")
    missing = [rel for rel in OVERSIZED if not (ROOT / rel).exists()]
    assert too_long == [] and stale == [] and missing == []


# --- the checker itself -----------------------------------------------------------------------------------------


def _fake(**modules: str) -> dict[str, tuple[str, bool]]:
    packages = {name.rsplit(".", 1)[0] for name in modules if "." in name}
    sources = {name: (source, name in packages) for name, source in modules.items()}
    for package in packages:
        sources.setdefault(package, ("", True))
    return sources


def test_the_checker_sees_a_type_checking_cycle_but_not_a_lazy_one() -> None:
    handler_and_blocks = _fake(
        **{
            "handlers.health.command": "from handlers.health import blocks",
            "handlers.health.blocks": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from handlers.health.command import Report",
        }
    )
    assert cycles(graph_of(handler_and_blocks)) == [["handlers.health.blocks", "handlers.health.command"]]
    lazy = _fake(
        **{
            "bot.a": "import bot.b",
            "bot.b": "def f():\n    from bot import a",
        }
    )
    assert cycles(graph_of(lazy)) == []


def test_the_checker_names_each_broken_rule() -> None:
    sources = _fake(
        **{
            "bot.runtime": "from handlers import build_registry",
            "bot.cli": "def console():\n    from stand_ins.console_runner import run_console",
            "bot.other": "def f():\n    import stand_ins.demo",
            "integrations.slack": "from bot.settings import Settings",
            "bot.settings": "",
            "handlers.rollback.run": "from handlers.health import probing\nfrom handlers import flags",
            "handlers.health.probing": "",
            "handlers.flags.changes": "",
            "handlers.capabilities": "from handlers.health import probing",
            "stand_ins.console_runner": "",
            "stand_ins.demo": "",
        }
    )
    problems = rule_violations(graph_of(sources))
    assert [p.split(":")[0] for p in problems] == [
        "bot.runtime",
        "bot.other",
        "integrations.slack",
        "handlers.rollback.run",
    ]
