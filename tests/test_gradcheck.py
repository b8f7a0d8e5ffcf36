"""The gradient checker itself: it must reject wrong backwards, and say where they are wrong."""
import re

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F


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


def one_element_wrong_square(index, change):
    """x**2 whose backward gets the gradient's element ``index`` (flat) wrong by ``change``."""
    class OneWrong(mdl.Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            g = (gy * 2 * self.inputs[0]).data.copy()
            g.reshape(-1)[index] = change(g.reshape(-1)[index])
            return mdl.tensor(g)

    return lambda x: OneWrong()(x)


def test_rejects_an_error_in_one_element_under_projection():
    with pytest.raises(mdl.GradcheckError, match=r"element \[3, 4\]"):
        mdl.gradcheck(one_element_wrong_square(3 * 6 + 4, lambda g: g * 1.01), [big()])


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


# --- error bars ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["elementwise", "directional"])
@pytest.mark.parametrize("make", [x23, big], ids=["full-jacobian", "random-projection"])
@pytest.mark.parametrize("factor", [1 + 1e-6, 1 - 1e-6])
def test_defaults_reject_a_backward_off_by_one_part_in_a_million(make, mode, factor):
    # The error bar of a Richardson estimate in float64 is ~1e-10 relative here: 1e-6 is far outside it
    with pytest.raises(mdl.GradcheckError, match="times the tolerance"):
        mdl.gradcheck(scaled_square(factor), [make()], mode=mode)
    assert mdl.gradcheck(scaled_square(1.0), [make()], mode=mode)


def test_the_message_states_the_error_bar():
    with pytest.raises(mdl.GradcheckError, match=r"numerical 2\.\d+ \+- \d\.\de-\d\d, .*relative error 1e-05, "
                                                 r"[\d.e+]+ times the tolerance \(error bar 4 x \d\.\de-\d\d\)"):
        mdl.gradcheck(scaled_square(1 + 1e-5), [mdl.tensor(np.array([1.1]), requires_grad=True)])


def test_atol_and_rtol_replace_the_error_bar_by_a_fixed_tolerance():
    # PyTorch's defaults (atol=1e-5, rtol=1e-3) let a 1e-4 error through; the error bar does not
    with pytest.raises(mdl.GradcheckError):
        mdl.gradcheck(scaled_square(1 + 1e-4), [x23()])
    assert mdl.gradcheck(scaled_square(1 + 1e-4), [x23()], atol=1e-5, rtol=1e-3)
    with pytest.raises(mdl.GradcheckError, match=r"atol=0, rtol=1e-05"):
        mdl.gradcheck(scaled_square(1 + 1e-4), [x23()], rtol=1e-5)


@pytest.mark.parametrize("fn, x", [
    (lambda x: (x * 40).exp(), [0.3, -0.2]),             # steep: f''' / f' = 1600
    (lambda x: x ** 3, [0.0, 1e-7]),                     # f' = f'' = 0 at 0: no kink, however flat
    (lambda x: (x * 1e4).tanh(), [1e-3, -3e-4]),         # curvature on the scale of 1e-4
    (lambda x: x * 1e8 + 3, [2.0, 1.0]),                 # a large output: rounding scales with it
    (lambda x: (x - 1e3) ** 2, [1e3 + 0.5, 1e3 - 2]),    # inputs far from 0
], ids=["steep-exp", "flat-cube", "sharp-tanh", "large-output", "far-input"])
def test_correct_but_awkward_functions_pass(fn, x):
    assert mdl.gradcheck(fn, [mdl.tensor(np.array(x), requires_grad=True)])


# --- kinks -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, x, where", [
    (lambda x: x.relu(), [0.5, 0.0, -1.0], "[1]"),
    (lambda x: x.relu(), [0.5, 1.2e-5, -1.0], "[1]"),        # within 2 eps, not at the kink itself
    (lambda x: x.abs(), [-3e-6, 2.0], "[0]"),
    (lambda x: x.clip(-1, 1), [0.3, 1.0 - 5e-6], "[1]"),
    (lambda x: x.max(), [0.7, 0.7, 0.1], "[0]"),             # a tie
    (lambda x: mdl.maximum(x, mdl.tensor(np.array([0.2, 0.2]))), [0.2, 1.0], "[0]"),
], ids=["relu-at-0", "relu-near-0", "abs", "clip-bound", "max-tie", "maximum-tie"])
def test_an_input_at_a_kink_is_reported_as_such(fn, x, where):
    with pytest.raises(mdl.NondifferentiableError, match=r"x?\[?.*" + re.escape(where) + r".*not differentiable"):
        mdl.gradcheck(fn, [mdl.tensor(np.array(x), requires_grad=True)])


def test_a_max_pooling_tie_is_reported_as_a_kink():
    x = np.random.default_rng(0).permutation(16).reshape(1, 1, 4, 4).astype(np.float64)
    x[0, 0, 0, 1] = x[0, 0, 0, 0] = 20.0  # the first window's maximum, twice
    with pytest.raises(mdl.NondifferentiableError, match="max pooling"):
        mdl.gradcheck(lambda t: F.max_pool2d(t, 2), [mdl.tensor(x, requires_grad=True)])


def test_a_kink_beyond_the_steps_is_no_concern():
    assert mdl.gradcheck(lambda x: x.relu(), [mdl.tensor(np.array([0.5, 1e-3, -1.0]), requires_grad=True)])


def test_gradgradcheck_reports_the_jump_in_a_derivative():
    # relu's derivative jumps at 0: to the second-order check it is a discontinuity, a kink and worse
    with pytest.raises(mdl.NondifferentiableError):
        mdl.gradgradcheck(lambda x: x.relu() * x, [mdl.tensor(np.array([0.0, 1.0]), requires_grad=True)])


# --- directional mode ------------------------------------------------------------------------------

def counting(fn):
    calls = []

    def counted(*args):
        calls.append(1)
        return fn(*args)

    return counted, calls


def test_auto_mode_checks_large_inputs_along_random_directions():
    from minidl.gradcheck import DIRECTIONS, ELEMENTWISE_MAX_SIZE

    small = mdl.tensor(np.random.default_rng(0).uniform(-1, 1, ELEMENTWISE_MAX_SIZE), requires_grad=True)
    large = mdl.tensor(np.random.default_rng(0).uniform(-1, 1, ELEMENTWISE_MAX_SIZE + 1), requires_grad=True)
    fn, calls = counting(lambda x: (x * x).sum())
    assert mdl.gradcheck(fn, [small])
    assert len(calls) == 1 + 4 * ELEMENTWISE_MAX_SIZE
    calls.clear()
    assert mdl.gradcheck(fn, [large])
    assert len(calls) == 1 + 4 * DIRECTIONS


def test_a_real_conv_layer_is_checked_in_a_few_dozen_evaluations():
    mdl.manual_seed(0)
    conv = mdl.nn.Conv2d(8, 16, 3, padding=1).double()
    x = mdl.tensor(np.random.default_rng(0).standard_normal((4, 8, 16, 16)), requires_grad=True)
    fn, calls = counting(lambda x, w, b: F.conv2d(x, w, b, padding=1))
    assert mdl.gradcheck(fn, [x, conv.weight, conv.bias])  # 8192 + 1152 + 16 elements
    assert len(calls) <= 1 + 4 * 3 * 2 + 4 * 16  # x and w along 3 directions, b element by element


def test_directional_mode_rejects_one_wrong_element_of_a_large_gradient():
    x = mdl.tensor(np.random.default_rng(0).uniform(-1, 1, (40, 50)), requires_grad=True)
    with pytest.raises(mdl.GradcheckError, match="along random direction"):
        mdl.gradcheck(one_element_wrong_square(1234, lambda g: g + 1e-4), [x])


def test_an_unknown_mode_or_no_direction_is_refused():
    with pytest.raises(ValueError, match="mode must be"):
        mdl.gradcheck(lambda x: x * 2, [x23()], mode="fast")
    with pytest.raises(ValueError, match="directions must be an int of at least 1"):
        mdl.gradcheck(lambda x: x * 2, [x23()], mode="directional", directions=0)
