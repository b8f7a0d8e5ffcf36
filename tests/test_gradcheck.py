"""The gradient checker itself: it must reject wrong backwards, and say where they are wrong."""
import numpy as np
import pytest

import minidl as mdl


def scaled_square(factor):
    """x**2 whose backward is off by ``factor``."""
    class Sq(mdl.Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            return gy * 2 * self.inputs[0] * factor

    return lambda x: Sq()(x)


def x23():
    return mdl.tensor(np.random.default_rng(0).uniform(0.5, 2, (2, 3)), requires_grad=True)


def big():
    return mdl.tensor(np.random.default_rng(0).uniform(0.5, 2, (5, 6)), requires_grad=True)


def test_accepts_a_correct_backward():
    assert mdl.gradcheck(scaled_square(1.0), [x23()])
    assert mdl.gradcheck(scaled_square(1.0), [big()])


@pytest.mark.parametrize("make", [x23, big], ids=["full-jacobian", "random-projection"])
def test_rejects_a_backward_wrong_by_a_tenth_of_a_percent(make):
    # Central differences in float64 are accurate to ~1e-10 here, so a tolerance of 1e-4 is safe and a
    # 0.1% error is ten times over it. (The default rtol=1e-3 is the contract's; at it, 0.1% sits exactly
    # on the bound, see the next test.)
    with pytest.raises(mdl.GradcheckError):
        mdl.gradcheck(scaled_square(1.001), [make()], rtol=1e-4)
    assert mdl.gradcheck(scaled_square(1.0), [make()], rtol=1e-4)


@pytest.mark.parametrize("factor", [1.002, 0.998, 1.01, -1.0, 0.0])
def test_defaults_reject_small_errors(factor):
    with pytest.raises(mdl.GradcheckError):
        mdl.gradcheck(scaled_square(factor), [big()])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("make", [x23, big], ids=["full-jacobian", "random-projection"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_analytic_gradient_fails(make, bad):
    # err / bound is NaN for a NaN gradient and NaN > 1 is False: before, this passed silently.
    class Poisoned(mdl.Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            return gy * 2 * self.inputs[0] * bad

    with pytest.raises(mdl.GradcheckError, match=r"analytic (nan|inf), numerical .*derivatives are not finite "
                                                 r"\(NaN or inf\)\. Pass allow_nonfinite=True"):
        mdl.gradcheck(lambda x: Poisoned()(x), [make()])
    with pytest.raises(mdl.GradcheckError, match="not finite"):
        mdl.gradgradcheck(lambda x: Poisoned()(x), [make()])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_non_finite_numerical_derivative_fails():
    # sqrt at -1: the forward itself is NaN there, so both derivatives with respect to x[1] are
    x = mdl.tensor(np.array([4.0, -1.0, 9.0]), requires_grad=True)
    with pytest.raises(mdl.GradcheckError, match=r"d output\[\d\] / d x\[1\].*not finite"):
        mdl.gradcheck(lambda x: x.sqrt(), [x])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_allow_nonfinite_skips_those_values_and_checks_the_rest():
    x = mdl.tensor(np.array([4.0, -1.0, 9.0]), requires_grad=True)
    assert mdl.gradcheck(lambda x: x.sqrt(), [x], allow_nonfinite=True)

    class WrongWhereFinite(mdl.Function):  # sqrt's backward, 1% off
        def forward(self, x):
            return np.sqrt(x)

        def backward(self, gy):
            return gy * 0.505 / self.inputs[0].sqrt()

    with pytest.raises(mdl.GradcheckError, match="relative error"):
        mdl.gradcheck(lambda x: WrongWhereFinite()(x), [x], allow_nonfinite=True)


def test_rejects_an_error_in_one_element_under_projection():
    class OneWrong(mdl.Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            g = (gy * 2 * self.inputs[0]).data.copy()
            g[3, 4] *= 1.01
            return mdl.tensor(g)

    with pytest.raises(mdl.GradcheckError, match=r"element \[3, 4\]"):
        mdl.gradcheck(lambda x: OneWrong()(x), [big()])


def test_message_names_input_element_values_and_relative_error():
    a = mdl.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(mdl.GradcheckError) as info:
        mdl.gradcheck(lambda c, x: c * scaled_square(1.1)(x), [a, x23()])
    msg = str(info.value)
    assert "input 1 (shape (2, 3))" in msg
    assert "analytic" in msg and "numerical" in msg and "relative error 0.1" in msg
    assert "d output[" in msg


def test_checks_in_float64_even_for_float32_inputs():
    x = mdl.tensor(np.random.default_rng(0).uniform(0.5, 2, (2, 3)).astype(np.float32), requires_grad=True)
    seen = []
    assert mdl.gradcheck(lambda t: seen.append(t.dtype) or t.exp(), [x])
    assert seen and all(d == np.float64 for d in seen)


def test_refuses_float32_computation_inside_fn():
    w = mdl.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        mdl.gradcheck(lambda x: x.astype(np.float32) * w, [mdl.tensor(np.ones(3), requires_grad=True)])


def test_rejects_a_function_that_modifies_its_input():
    def mutating(x):
        y = x * 2
        x.data[0] += 1
        return y

    with pytest.raises(mdl.GradcheckError, match="modified input 0 in place"):
        mdl.gradcheck(mutating, [x23()])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        mdl.gradcheck(lambda x: x * 2, [mdl.tensor(np.ones(2))])


def test_gradgradcheck_rejects_a_backward_that_is_not_differentiable():
    class Cube(mdl.Function):
        def forward(self, x):
            return x ** 3

        def backward(self, gy):
            # right first derivative, but built from a constant: its own derivative is lost
            return gy * mdl.tensor(3 * self.inputs[0].data ** 2)

    f = lambda x: Cube()(x)  # noqa: E731
    assert mdl.gradcheck(f, [x23()])
    with pytest.raises(mdl.GradcheckError):
        mdl.gradgradcheck(f, [x23()])
