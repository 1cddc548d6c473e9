"""The house rules a contributor can break without noticing: the package's modules never import
the root package (whose __init__ imports the faces, so such an import points up), and no module
imports another package's private names. (The layers themselves are import-linter's contract in
pyproject.toml, checked by `make lint`.)"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "feedbackgym"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(path: Path):
    """(line, imported module, imported name or None) for every import in the file, however deep
    inside a function it sits."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                yield node.lineno, node.module, a.name


def private_violation(importer: str, module: str, name: str | None) -> str | None:
    """What is wrong with ``importer`` importing ``name`` from ``module``, if anything: a private
    segment ``_x`` of the dotted path (a module or a name) may be reached only from inside what
    holds it."""
    full = module.split(".") + ([name] if name else [])
    for i, part in enumerate(full):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(full[:i])
            if not (importer == owner or importer.startswith(owner + ".")):
                return f"{'.'.join(full[: i + 1])} is private to {owner}"
    return None


def is_submodule(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


ALL = list(modules())


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_module_imports_the_root_package(name, path):
    if name == "feedbackgym":
        return
    bad = [line for line, module, imported in imports(path) if module == "feedbackgym" and not (imported and is_submodule(imported))]
    assert not bad, f"{path}: imports the root package feedbackgym at lines {bad}; import the defining module instead"


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_module_imports_another_modules_private_names(name, path):
    bad = []
    for line, module, imported in imports(path):
        if module.startswith("feedbackgym"):
            why = private_violation(name, module, imported)
            if why:
                bad.append(f"line {line}: {why}")
    assert not bad, f"{path}: " + "; ".join(bad)


def test_the_private_rule_bites():
    assert private_violation("feedbackgym.agents.games", "feedbackgym.envs.tasks.spc", "_STEP")
    assert private_violation("feedbackgym.cli", "feedbackgym.learners._base", "Learner")
    assert private_violation("feedbackgym.learners.archer", "feedbackgym.learners._base", "Learner") is None
    assert private_violation("feedbackgym.envs.engine", "feedbackgym.envs", "tasks") is None
