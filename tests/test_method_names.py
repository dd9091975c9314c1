"""A method is one module: outside `aft_fast/methods/` no string literal names a method, except
where a driver runs that method on purpose (the demo's natural → AFT, the plateau study, RiFT's
clean fine-tuning), RiFT's own modules, and the CLI's default. A table keyed by method names
elsewhere would fail here."""
import ast
from pathlib import Path

from aft_fast.compare.recipes import ROW_NAMES

PACKAGE = Path(__file__).resolve().parent.parent / "aft_fast"
OWN_MODULES = {"methods"}
ON_PURPOSE = {
    "commands/demo.py": {"natural", "aft"},  # the demo: natural pretraining, then AFT
    "analysis/plateau.py": {"aft"},  # the plateau study fine-tunes with AFT
    "commands/analyze.py": {"aft"},  # ... and its command
    "rift/finetune.py": {"natural"},  # RiFT fine-tunes one module on clean data
    "rift/method.py": {"rift", "pgd-at"},  # RiFT's row: its name, its parent
    "rift/pipeline.py": {"rift"},  # RiFT names its own checkpoints
    "commands/rift.py": {"rift"},  # the `aft-fast rift` command
    "train/options.py": {"aft"},  # the CLI's default --method
}


def method_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in ROW_NAMES}


def test_no_method_name_outside_the_method_modules():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.split("/")[0] in OWN_MODULES or rel in OWN_MODULES:
            continue
        names = method_literals(path) - ON_PURPOSE.get(rel, set())
        if names:
            found[rel] = sorted(names)
    assert found == {}


def test_the_check_can_fail(tmp_path):
    planted = tmp_path / "table.py"
    planted.write_text('COST = {"pgd-at": 8, "free-at": 4}\n')
    assert method_literals(planted) == {"pgd-at", "free-at"}
