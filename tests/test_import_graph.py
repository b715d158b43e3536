"""Dependencies point one way, ui -> server -> video -> inr, and module-level imports form no
cycle: read from the source with `ast` (lazy imports inside functions count for the layers).
Tests follow the layers too: only CLI tests drive the command line."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"inr": 0, "video": 1, "server": 2, "ui": 3}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in LAYERS:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    """Project modules (and names within them) that `module` imports."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names}
    return {n for n in found if n.split(".")[0] in LAYERS}


def test_no_upward_import():
    bad = []
    for module, path in _modules().items():
        rank = LAYERS[module.split(".")[0]]
        bad += [f"{module} imports {n}" for n in _imports(path, module, top_level_only=False) if LAYERS[n.split(".")[0]] > rank]
    assert not bad, "\n".join(sorted(bad))


def test_no_module_level_import_cycle():
    modules = _modules()
    graph = {m: {n for n in _imports(p, m, top_level_only=True) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(m: str, stack: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack + [m, n]
            if n not in state and (cycle := visit(n, stack + [m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m, [])
            assert cycle is None, " -> ".join(cycle)


# Test files that drive the command line although their names do not say so, and why.
CLI_DRIVERS = {
    "test_toy_family.py": "issue 9's proof: a family defined in the test file alone fits, encodes and decodes through the CLI",
    "test_server_robust.py": "starts `inr serve` as a real process to test the server's process lifecycle",
}


def test_core_tests_do_not_drive_the_cli():
    """Tests of inr/ and video/ call those layers: a check that needs the command line lives in a
    test_cli*.py (or test_ui*.py) file, so a core test fails for a core reason only."""
    bad = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name.startswith(("test_cli", "test_ui")) or path.name in CLI_DRIVERS or path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        imports = _imports(path, f"tests.{path.stem}", top_level_only=False)
        runs = any(isinstance(n, ast.Constant) and n.value == "ui.cli" for n in ast.walk(tree))
        if runs or any(n.split(".")[0] == "ui" for n in imports):
            bad.append(path.name)
    assert not bad, f"move their CLI checks to test_cli*.py: {bad}"
