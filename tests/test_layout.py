"""The layout holds: folders follow the path of a job and no import runs back up, the production path
never imports the fakes, and no module or function grows past what one reader takes in at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = [
    # Below the domain, which stays pure: what every layer records for GET /metrics, importing nothing of the app.
    ("app.metrics",),
    ("app.domain",),
    ("app.store", "app.github"),
    ("app.agent",),
    ("app.settings",),
    ("app.intake",),
    ("app.pipeline.present",),
    ("app.pipeline",),
    ("app.engine",),
    ("app.web",),
    ("app.observability", "app.assembly", "app.demo", "app.operator", "app.cli", "app.__main__"),
]
FAKES = "app.fakes"
# The demo, and a replay with --embedded (no service, no App), run on the fakes; nothing else does.
MAY_IMPORT_FAKES = ("app.fakes", "app.demo", "app.operator.replay_embedded")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 6
# A subprocess wrapper's keyword options read better spelled out than bundled.
MANY_PARAMETERS_OK = {"app.agent.boundary.hostgit.run_git"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int | None:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return best[0] if best else None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES)
    return {name for name in found if name == "app" or name.startswith("app.")}


def test_no_import_runs_back_up():
    upward = []
    for module, path in MODULES.items():
        own = _layer(module)
        if own is None:
            continue
        for target in _imports(module, path):
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                upward.append(f"{module} imports {target}")
    assert not upward, "imports against the path of a job:\n" + "\n".join(sorted(upward))


def test_every_module_has_a_layer():
    lost = [m for m in MODULES if m != "app" and _layer(m) is None and not m.startswith(FAKES)]
    assert not lost, f"modules outside every layer (add them to LAYERS): {lost}"


def test_the_production_path_never_imports_the_fakes():
    users = [f"{module} imports {target}" for module, path in MODULES.items()
             if not module.startswith(MAY_IMPORT_FAKES)
             for target in _imports(module, path) if target.startswith(FAKES)]
    assert not users, "\n".join(users)


def test_each_folder_says_what_lives_there():
    quiet = [str(p.relative_to(APP.parent)) for p in APP.rglob("__init__.py")
             if p.parent != APP and not ast.get_docstring(ast.parse(p.read_text()))]
    assert not quiet, f"folders whose __init__.py has no docstring: {quiet}"


def _production_modules():
    return [(m, p) for m, p in sorted(MODULES.items()) if not m.startswith(FAKES)]


@pytest.mark.parametrize("module,path", _production_modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_modules_and_functions_stay_small(module, path):
    source = path.read_text()
    problems = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        problems.append(f"{lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            problems.append(f"{node.name}: {length} lines (at most {MAX_FUNCTION_LINES})")
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        count = len([a for a in args if a.arg not in ("self", "cls")])
        if count > MAX_PARAMETERS and f"{module}.{node.name}" not in MANY_PARAMETERS_OK:
            problems.append(f"{node.name}: {count} parameters (at most {MAX_PARAMETERS}; a small dataclass says it better)")
    assert not problems, f"{module}: " + "; ".join(problems)
