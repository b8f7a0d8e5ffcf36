"""No op can land without a gradient check: every registered Function needs a case in gradcases."""
import minidl as mdl
from gradcases import all_cases


def test_every_registered_op_has_a_gradcheck_case():
    covered = {c.op for c in all_cases()}
    missing = sorted(set(mdl.registered_ops()) - covered)
    assert not missing, f"ops without a gradcheck case in tests/gradcases: {missing}"


def test_cases_name_real_ops():
    unknown = sorted({c.op for c in all_cases()} - set(mdl.registered_ops()))
    assert not unknown, f"gradcheck cases name ops that are not registered: {unknown}"


def test_user_functions_are_not_registered():
    class Twice(mdl.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return 2 * gy

    assert "Twice" not in mdl.registered_ops()
