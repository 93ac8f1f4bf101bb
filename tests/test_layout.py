"""The house rules of ``rilib/``, read from the source with ``ast``: no import cycle, and nothing imports upwards.

The layers, from the bottom:

- **core**: ``rilib`` itself and its top-level modules (registry, errors, paths, rng, timing, stopping,
  profiles, data, models, attacks, train, evaluate, zoo, pack);
- **lenses**: ``rilib.lenses.*``, the measurements on a trained model;
- **book**: ``rilib.book.*``, the papermill runner, display helpers, plotting and the claims ledger;
- **chapters**: ``rilib.chapters.*``, the shared catalogue and one module per page;
- **entry points**: ``rilib.cli`` and ``rilib.__main__``, which run everything and which nothing imports.

A module may import its own layer and the layers below it. Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rilib"

LAYERS = ("core", "lenses", "book", "chapters", "entry points")
CORE = {"rilib"} | {f"rilib.{m}" for m in ("registry", "errors", "paths", "rng", "timing", "stopping", "profiles", "data",
                                           "canvas", "models", "attacks", "train", "evaluate", "zoo", "pack")}
ENTRY_POINTS = {"rilib.cli", "rilib.__main__"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    """The layer of a module of rilib, or None for a module that belongs to none."""
    if module in ENTRY_POINTS:
        return "entry points"
    if module in CORE:
        return "core"
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ("lenses", "book", "chapters"):
        return parts[1]
    if len(parts) == 2 and parts[1] in ("lenses", "book", "chapters") and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return None


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Every module of the package and the modules of the package it imports (anywhere in its source)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from .lenses import saliency` imports the module rilib.lenses.saliency
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # `import rilib.zoo.x` → the deepest module that exists
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_belongs_to_a_layer():
    homeless = sorted(m for m in import_graph() if layer(m) is None)
    assert not homeless, f"modules outside core, lenses, book, chapters and the entry points: {homeless}"


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_nothing_imports_upwards():
    graph = import_graph()
    upward = []
    for module, targets in graph.items():
        here = layer(module)
        for t in targets:
            there = layer(t)
            if here and (there is None or LAYERS.index(there) > LAYERS.index(here)):
                upward.append(f"{module} ({here}) imports {t} ({there or 'no layer'})")
    assert not upward, "\n".join(sorted(upward))


def test_the_checker_sees_what_it_must(tmp_path):
    """The graph reader on a made-up package: a cycle through a function-level import, and an upward import."""
    pkg = tmp_path / "rilib"
    (pkg / "chapters").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import train\n")
    (pkg / "train.py").write_text("def f():\n    from .zoo import load\n")
    (pkg / "zoo.py").write_text("from . import train\nfrom .chapters import page\n")
    (pkg / "chapters" / "__init__.py").write_text("")
    (pkg / "chapters" / "page.py").write_text("from ..zoo import load\n")
    graph = import_graph(pkg)
    assert graph["rilib.train"] == {"rilib.zoo"} and "rilib.chapters.page" in graph["rilib.zoo"]
    assert find_cycle(graph) is not None
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# Pages: prose, one rilib call per figure or table, and glue. Loops, conditions, comprehensions, arithmetic and
# slicing belong in the chapter's module, where they are tested and documented. The exercises are exempt: their
# starters and solutions are the students' own code.
LOGIC = (ast.For, ast.While, ast.If, ast.IfExp, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.Lambda,
         ast.BinOp, ast.Slice, ast.FunctionDef, ast.Compare, ast.BoolOp)
NOTEBOOKS = PACKAGE.parent / "notebooks"


def logic_in_page(text: str) -> list[str]:
    """The pieces of logic in the code cells of a page's MyST ``text``, before its exercises."""
    import jupytext
    found = []
    nb = jupytext.reads(text.split("\n## Exercises")[0], fmt="md:myst")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(line for line in cell.source.splitlines() if not line.startswith(("%", "!")))
        found += [ast.get_source_segment(src, node) for node in ast.walk(ast.parse(src)) if isinstance(node, LOGIC)]
    return found


def test_pages_hold_no_logic():
    pages = sorted(NOTEBOOKS.glob("*.md"))
    assert len(pages) >= 8
    offenders = {p.name: logic_in_page(p.read_text()) for p in pages}
    assert not any(offenders.values()), {k: v for k, v in offenders.items() if v}


def test_the_logic_checker_sees_loops_arithmetic_and_conditions():
    page = "# A page\n\n```{code-cell} ipython3\nx = {k: v for k, v in d.items()}\ny = a * b\n```\n\n" \
           "```{code-cell} ipython3\nif x:\n    print(y)\n```\n\n## Exercises\n\n```{code-cell} ipython3\n" \
           "answer = [i for i in range(3)]\n```\n"
    found = logic_in_page(page)
    assert found == ["{k: v for k, v in d.items()}", "a * b", "if x:\n    print(y)"]


def test_every_test_of_the_smoke_book_runs_on_the_worker_that_builds_it(request):
    """``make test`` spreads the suite over pytest-xdist workers by ``xdist_scope`` (tests/conftest.py): every test
    that reads the smoke book must share one scope, or a second worker would build the book again (minutes)."""
    from conftest import xdist_scope
    assert xdist_scope("tests/test_book.py::test_every_chapter_executes_under_smoke") == "smoke book"
    assert xdist_scope("tests/test_stats.py::test_seed_interval_is_the_student_t_interval") == "tests/test_stats.py"
    readers = [item.nodeid for item in request.session.items if "smoke_book" in getattr(item, "fixturenames", ())]
    assert {xdist_scope(n) for n in readers} <= {"smoke book"}, readers
