"""Data flows one way: no stage imports a later one (STYLE.md, convention 1).

Stages in order: data -> features -> models (with the graph operators of nn) -> train
-> evaluate -> track. Utilities (``gnnrec.errors``, which imports nothing, then
``gnnrec.utils`` and ``gnnrec.keys``) come before all of them; ``run``, ``api``, ``cli``,
``demo``, ``embed``, ``report``, ``config`` and ``config_check`` wire the stages and may
import any. The check reads every module's imports, including those inside functions,
with ``ast``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gnnrec"
ORDER = [
    "errors",
    "utils",
    "keys",
    "data",
    "features",
    "nn",
    "models",
    "train",
    "evaluate",
    "track",
]


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "gnnrec" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ORDER else None


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_stage_imports_a_later_stage(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    own = stage_of(module)
    if own is None:
        return  # wiring modules
    later = [
        name
        for name in imports(path)
        if (stage := stage_of(name)) is not None and ORDER.index(stage) > ORDER.index(own)
    ]
    assert not later, f"{module} ({own}) imports later stage(s): {sorted(later)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from gnnrec.track import NullTracker\n")
    assert "gnnrec.track" in imports(path)
