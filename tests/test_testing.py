"""minidl.testing: check_op passes a correct op, fails each kind of broken op with a message naming
the check, and OpTestCase becomes one pytest test per check and dtype."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
import minidl.testing as mt

ROOT = Path(__file__).resolve().parent.parent


def softplus_ref(x):
    return np.log1p(np.exp(x))


class Softplus(mdl.Function):
    """y = log(1 + e^x), dy/dx = sigmoid(x)."""

    def forward(self, x):
        return np.logaddexp(x, x.dtype.type(0))

    def backward(self, gy):
        x, = self.inputs
        return gy * x.sigmoid()


class OffByAFactor(Softplus):
    def backward(self, gy):
        x, = self.inputs
        return gy * x.sigmoid() * 1.5


class InPlace(Softplus):
    def forward(self, x):
        np.logaddexp(x, x.dtype.type(0), out=x)  # overwrites the caller's array
        return x.copy()


class Promotes(Softplus):
    def forward(self, x):
        return np.logaddexp(x, 0.0).astype(np.float64)  # float32 in, float64 out


class WrongForward(Softplus):
    def forward(self, x):
        return np.maximum(x, 0) + x.dtype.type(np.log(2))  # a rough sketch of softplus, not softplus


class MulNoSum(mdl.Function):
    """a * b, with a backward that forgets to sum the gradient back over broadcast dimensions."""

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return gy * b, gy * a


class RowSum(mdl.Function):
    """x.sum(axis=1) via keepdims + squeeze(): a batch of 1 loses its batch dimension too."""

    def forward(self, x):
        return x.sum(axis=1, keepdims=True).squeeze()

    def backward(self, gy):
        x, = self.inputs
        return gy.reshape(-1, 1) * mdl.tensor(np.ones(x.shape, x.dtype))


def mul(a, b):
    return a * b


# --- a correct op passes ------------------------------------------------------------------

def test_a_correct_op_passes_every_check():
    passed = mt.check_op(Softplus, [(2, 3)], reference=softplus_ref)
    assert passed == ["inputs_unchanged float32", "inputs_unchanged float64", "dtype float32", "dtype float64",
                      "forward float32", "forward float64", "gradcheck float64", "gradgradcheck float64",
                      "batch1 float32", "batch1 float64"]


def test_a_correct_broadcasting_op_passes_and_each_input_is_broadcast():
    calls = []

    def make_inputs(rng, shapes, dtype):
        calls.append(tuple(shapes))
        return mt.draw_inputs(rng, shapes, dtype)

    passed = mt.check_op(mul, [(2, 3), (2, 3)], reference=np.multiply, broadcast=True, make_inputs=make_inputs,
                         checks="broadcast", dtypes=[np.float64])
    assert passed == ["broadcast float64"]
    assert {((1, 3), (2, 3)), ((2, 1), (2, 3)), ((3,), (2, 3)), ((2, 3), (1, 3)), ((2, 3), (2, 1)),
            ((2, 3), (3,))} <= set(calls)


def test_inputs_are_drawn_by_kind_and_seed():
    rng = np.random.default_rng(0)
    pos, nonzero, distinct = mt.draw_inputs(rng, [(50,), (50,), (50,)], np.float32, ("positive", "nonzero", "distinct"))
    assert pos.dtype == np.float32 and pos.min() >= 0.5
    assert np.abs(nonzero).min() >= 0.2
    assert np.diff(np.sort(distinct)).min() > 0.1
    seen = []
    mt.check_op(lambda x: x.log(), [(2, 3)], kind="positive", seed=7, checks=["dtype"], dtypes=[np.float64],
                make_inputs=lambda rng, shapes, dtype: seen.append(rng.random()) or mt.draw_inputs(rng, shapes, dtype,
                                                                                                  "positive"))
    assert seen == [np.random.default_rng(7).random()]
    with pytest.raises(ValueError, match="kind must be one of"):
        mt.check_op(lambda x: x.log(), [(2, 3)], kind="positve")


def test_integer_inputs_pass_through_without_gradient():
    from minidl.nn import functional as F

    def make_inputs(rng, shapes, dtype):
        (n, c), _ = shapes
        return [rng.standard_normal((n, c)).astype(dtype), rng.integers(0, c, n)]

    def reference(x, target):
        logp = x - np.log(np.exp(x).sum(1, keepdims=True))
        return -logp[np.arange(len(target)), target].mean()

    assert mt.check_op(lambda x, t: F.cross_entropy(x, t), [(4, 3), (4,)], make_inputs=make_inputs,
                       reference=reference, checks=["forward", "gradcheck", "batch1"], name="cross_entropy")


# --- each kind of broken op fails, naming the check ---------------------------------------

@pytest.mark.parametrize("op, error, pattern", [
    (OffByAFactor, mdl.GradcheckError,
     r"^OffByAFactor: the gradcheck check failed for float64 inputs of shapes \[\(3, 4\)\]: "),
    (InPlace, mt.OpCheckError, r"^InPlace: the inputs_unchanged check failed for float32 inputs of shapes "
                               r"\[\(3, 4\)\]: forward modified input 0 in place"),
    (Promotes, mt.OpCheckError, r"^Promotes: the dtype check failed for float32 inputs of shapes \[\(3, 4\)\]: "
                                r"output 0 is float64 for float32 inputs"),
    (WrongForward, mt.OpCheckError, r"^WrongForward: the forward check failed for float32 inputs of shapes "
                                    r"\[\(3, 4\)\]: (.|\n)*output 0 against the reference"),
    (RowSum, mt.OpCheckError, r"^RowSum: the batch1 check failed \(forward\) for float32 inputs of shapes "
                              r"\[\(1, 4\)\]: output 0 against the reference .* has shape \(\), "
                              r"but \(1,\) was expected"),
])
def test_a_broken_op_fails_naming_the_check(op, error, pattern):
    reference = (lambda x: x.sum(axis=1)) if op is RowSum else softplus_ref
    with pytest.raises(error, match=pattern) as info:
        mt.check_op(op, [(3, 4)], reference=reference)
    assert isinstance(info.value, AssertionError)


def test_a_batch1_bug_is_found_without_a_reference_too():
    with pytest.raises(mt.OpCheckError, match=r"^RowSum: the batch1 check failed \(forward\) for float32 inputs "
                                              r"of shapes \[\(1, 4\)\]: output 0 has shape \(\) for a batch of 1, "
                                              r"but 1 dimensions \(\(3,\)\) for the full batch"):
        mt.check_op(RowSum, [(3, 4)], checks=["batch1"])


def test_a_broadcast_bug_fails_in_the_broadcast_check():
    mt.check_op(MulNoSum, [(2, 3), (2, 3)], reference=np.multiply, checks=["forward", "gradcheck"])  # same shapes
    with pytest.raises(mt.OpCheckError, match=r"^MulNoSum: the broadcast check failed \(gradcheck\) for float64 "
                                              r"inputs of shapes \[\(1, 3\), \(2, 3\)\]: RuntimeError: "
                                              r"MulNoSum.backward returned a gradient of shape \(2, 3\) for an "
                                              r"input of shape \(1, 3\)"):
        mt.check_op(MulNoSum, [(2, 3), (2, 3)], reference=np.multiply, broadcast=True)


def test_a_wrong_output_shape_under_broadcasting_fails():
    def first(a, b):  # elementwise in name only: the result has a's shape
        return a * b.sum()

    with pytest.raises(mt.OpCheckError, match=r"the broadcast check failed \(output shape\) for float32 inputs of "
                                              r"shapes \[\(1, 3\), \(2, 3\)\]: output 0 has shape \(1, 3\); "
                                              r"broadcasting"):
        mt.check_op(first, [(2, 3), (2, 3)], broadcast=True, checks=["broadcast"])
    # not declared as broadcasting: no broadcast check
    assert "broadcast float32" not in mt.check_op(first, [(2, 3), (2, 3)], checks=["broadcast", "dtype"])


def test_an_error_raised_by_the_op_is_chained():
    with pytest.raises(mdl.GradcheckError) as info:  # a verdict: the message holds all of it
        mt.check_op(OffByAFactor, [(3, 4)], checks=["gradcheck"])
    assert info.value.__cause__ is None and "gradcheck failed for input 0" in str(info.value)
    with pytest.raises(mt.OpCheckError) as info:  # the op raised: its traceback is kept
        mt.check_op(MulNoSum, [(2, 3), (3,)], checks=["gradcheck"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_double_false_leaves_out_gradgradcheck():
    assert "gradgradcheck float64" not in mt.check_op(Softplus, [(3,)], double=False, batch_dim=False)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="needs an op of two or more inputs"):
        mt.check_op(Softplus, [(3,)], broadcast=True)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        mt.check_op(mul, [(2, 3), (4,)], broadcast=True)
    with pytest.raises(ValueError, match="unknown checks"):
        mt.check_op(Softplus, [(3,)], checks=["backward"])
    with pytest.raises(ValueError, match="float32 and/or float64"):
        mt.check_op(Softplus, [(3,)], dtypes=[np.int64])
    with pytest.raises(ValueError, match="batch_dim has 1 entries for 2 inputs"):
        mt.check_op(mul, [(3,), (3,)], batch_dim=[True])


# --- against PyTorch --------------------------------------------------------------------

@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError


@pytest.mark.torch
def test_torch_reference_as_a_name_or_a_callable_passes():
    torch = pytest.importorskip("torch")
    assert "torch float64" in mt.check_op(Softplus, [(3, 4)], torch_reference="torch.nn.functional.softplus",
                                          checks=["torch"])
    assert mt.check_op(mul, [(2, 3), (3,)], torch_reference=lambda a, b: torch.mul(a, b), checks=["torch"])


@pytest.mark.torch
def test_a_mismatch_with_torch_fails_the_torch_check():
    pytest.importorskip("torch")
    with pytest.raises(mt.OpCheckError, match=r"^Softplus: the torch check failed for float64 inputs of shapes "
                                              r"\[\(3, 4\)\]: (.|\n)*output 0 against PyTorch"):
        mt.check_op(Softplus, [(3, 4)], torch_reference="torch.nn.functional.gelu")
    # right values, wrong gradient: the gradients are compared too
    with pytest.raises(mt.OpCheckError, match=r"the torch check failed (.|\n)*the gradient of input 0 against "
                                              r"PyTorch's"):
        mt.check_op(OffByAFactor, [(3, 4)], torch_reference="torch.nn.functional.softplus", checks=["torch"])
    with pytest.raises(ValueError, match=r"'torch.nn.functional.softplux' does not name a function"):
        mt.check_op(Softplus, [(3,)], torch_reference="torch.nn.functional.softplux", checks=["torch"])


def test_without_torch_the_torch_check_skips_after_the_others(no_torch):
    with pytest.raises(pytest.skip.Exception, match=r"^could not import 'torch': .*; Softplus: the torch check "
                                                    r"needs PyTorch; the other 10 checks passed$"):
        mt.check_op(Softplus, [(2, 3)], reference=softplus_ref, torch_reference="torch.nn.functional.softplus")
    with pytest.raises(mdl.GradcheckError):  # a failing check still fails: the skip comes last
        mt.check_op(OffByAFactor, [(3, 4)], torch_reference="torch.nn.functional.softplus")


def test_op_test_case_skips_the_torch_test_without_torch(no_torch):
    class TestSoftplus(mt.OpTestCase):
        op = Softplus
        shapes = [(3,)]
        torch_reference = "torch.nn.functional.softplus"

    spec, = TestSoftplus._specs()
    with pytest.raises(pytest.skip.Exception, match="^could not import 'torch': .*; TestSoftplus: the torch check "
                                                    "needs PyTorch$"):
        TestSoftplus().test_op(spec, "torch", np.dtype(np.float64))


# --- OpTestCase under pytest ----------------------------------------------------------------

USER_TESTS = '''
import sys
sys.modules["torch"] = None  # as if PyTorch were not installed
import numpy as np
import minidl as mdl
from minidl.testing import OpTestCase


class Square(mdl.Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        x, = self.inputs
        return {factor} * gy * x


class TestSquare(OpTestCase):
    op = Square
    shapes = [(2, 3)]
    reference = staticmethod(lambda x: x ** 2)
    torch_reference = "torch.square"

    def test_by_hand(self):
        assert Square()(mdl.tensor([3.0])).item() == 9.0


class TestBrokenSquare(OpTestCase):
    op = staticmethod(lambda x: Square()(x) * 1.001)
    cases = [[(2, 3)], dict(shapes=[(4,)], batch_dim=False, double=False, id="vector")]
    reference = staticmethod(lambda x: x ** 2)
    dtypes = (np.float64,)
    checks = ("forward", "gradgradcheck")
'''

CONFTEST = '''
import json


def pytest_collection_modifyitems(config, items):
    with open("marks.json", "w") as f:
        json.dump({{item.nodeid.split("::", 1)[1]: sorted(m.name for m in item.iter_markers()) for item in items}}, f)
'''


def test_op_test_case_is_one_pytest_test_per_check_and_dtype(tmp_path):
    (tmp_path / "test_user_op.py").write_text(USER_TESTS.format(factor=2))
    (tmp_path / "conftest.py").write_text(CONFTEST.format())
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    torch: needs PyTorch\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "test_user_op.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout
    results = dict(line.split(" ")[:2] for line in out.splitlines() if line.startswith("test_user_op.py::"))
    results = {k.split("::", 1)[1]: v for k, v in results.items()}
    expected_square = {f"TestSquare::test_op[{check}-{dtype}]": "PASSED"
                       for check in ("inputs_unchanged", "dtype", "forward", "batch1")
                       for dtype in ("float32", "float64")}
    expected_square.update({"TestSquare::test_op[gradcheck-float64]": "PASSED",
                            "TestSquare::test_op[gradgradcheck-float64]": "PASSED",
                            "TestSquare::test_op[torch-float64]": "SKIPPED", "TestSquare::test_by_hand": "PASSED"})
    expected_broken = {"TestBrokenSquare::test_op[case0-forward-float64]": "FAILED",
                       # 1.001 times a right backward: its own derivative is right
                       "TestBrokenSquare::test_op[case0-gradgradcheck-float64]": "PASSED",
                       "TestBrokenSquare::test_op[vector-forward-float64]": "FAILED"}  # vector: double=False
    assert results == {**expected_square, **expected_broken}, out
    assert done.returncode == 1, out
    assert "TestBrokenSquare [case0]: the forward check failed for float64 inputs of shapes [(2, 3)]" in out
    assert "TestBrokenSquare [vector]: the forward check failed for float64 inputs of shapes [(4,)]" in out
    assert "SKIPPED [1] " in out and "could not import 'torch'" in out and "TestSquare: the torch check needs" in out
    marks = json.loads((tmp_path / "marks.json").read_text())
    assert marks["TestSquare::test_op[torch-float64]"] == ["torch"]  # the project registers a torch marker
    assert marks["TestSquare::test_op[gradcheck-float64]"] == []


def test_importing_minidl_testing_changes_nothing():
    code = textwrap.dedent("""
        import os, sys, threading
        env, threads = dict(os.environ), threading.active_count()
        import minidl
        assert "minidl.testing" not in sys.modules, "import minidl imported minidl.testing"
        import minidl.testing
        assert dict(os.environ) == env and threading.active_count() == threads
        assert "pytest" not in sys.modules and "torch" not in sys.modules, "imported pytest or torch"
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
