"""tools/mutate_suite.py keeps working: every mutation still applies to the code as it is, the self-check
refuses a bad one, --list runs, and one mutation goes through the whole machinery (scratch copy, the
copy's minidl imported, torch blocked) and is caught. The full mutation run takes tens of minutes and
is not part of the suite."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "mutate_suite.py"


@pytest.fixture(scope="module")
def mutate_suite():
    spec = importlib.util.spec_from_file_location("mutate_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_every_mutation_applies_exactly_once_and_changes_something(mutate_suite):
    assert mutate_suite.problems() == []
    assert len(mutate_suite.MUTATIONS) >= 25


def test_the_self_check_names_what_is_wrong(mutate_suite):
    bad = [mutate_suite.mutation("absent", "x", ["tests/test_oracles.py"], ("minidl/ops/dropout.py", "no such", "y")),
           mutate_suite.mutation("same", "x", ["tests/no_such_test.py"], ("minidl/ops/dropout.py", "p=0.5", "p=0.5"))]
    found = mutate_suite.problems(bad)
    assert any(p.startswith("absent: the old text occurs 0 times in minidl/ops/dropout.py") for p in found), found
    assert "same: an edit of minidl/ops/dropout.py changes nothing" in found
    assert "same: no test file tests/no_such_test.py" in found


def test_list_names_every_mutation(mutate_suite):
    out = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, check=True).stdout
    assert all(f"{m.name}  [{m.kind}]" in out for m in mutate_suite.MUTATIONS)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_one_mutation_end_to_end_without_torch(mutate_suite):
    m = next(m for m in mutate_suite.MUTATIONS if m.name == "save-drops-none-values")
    test = "tests/test_oracles.py::test_save_keeps_every_none"
    result = mutate_suite.run_tests([test], True, m)
    assert (result.status, result.detail) == ("yes", test), result.output
