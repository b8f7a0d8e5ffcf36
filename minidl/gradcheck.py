"""Finite-difference gradient checking.

The analytic gradient (what ``backward`` computes) is compared with central
differences,

    df/dx_j ~ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps),

whose error is O(eps^2) from truncation plus O(u/eps) from rounding (u is the
unit roundoff). In float64 (u ~ 1e-16) with eps = 1e-6 they are ~1e-12
(eps^2/6 times the third derivative) and ~1e-10, far below the tolerances; in float32 (u ~ 6e-8) the rounding term alone would
be ~0.06 at this eps, which is why every check runs in float64.

For a vector output, checking every element of the Jacobian costs one
backward pass per output element. Instead the output is projected onto a
random vector v: the scalar <v, f(x)> has gradient J^T v, which one backward
pass gives; a wrong Jacobian entry changes J^T v for almost every v. Small
outputs are checked element by element, which names the output element too.
"""
import numpy as np

from minidl import backend
from minidl.tensor import Tensor, grad

FULL_JACOBIAN_MAX_OUTPUTS = 16


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the finite-difference one."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _prepare_inputs(inputs):
    """Float64 leaf copies of the float tensor inputs; other inputs pass through."""
    out = []
    for x in _as_tuple(inputs):
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            out.append(Tensor(x.data.astype(np.float64, copy=True), requires_grad=x.requires_grad))
        else:
            out.append(x)
    checked = [i for i, x in enumerate(out) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    return out, checked


def _differentiable_outputs(fn, outputs):
    outputs = [y for y in _as_tuple(outputs) if isinstance(y, Tensor) and y.requires_grad]
    if not outputs:
        raise ValueError(f"gradcheck: {getattr(fn, '__name__', fn)} returned no output that requires grad")
    for i, y in enumerate(outputs):
        if y.dtype != np.float64:
            raise TypeError(
                f"gradcheck: output {i} is {y.dtype}, but the check must run in float64. The inputs were "
                "cast to float64; make sure the function's own tensors (e.g. a module's parameters, "
                "via module.double()) are float64 too"
            )
    return outputs


def _evaluate(fn, inputs):
    """The differentiable outputs of fn, flattened into one float64 host vector.

    Grad mode stays on: fn may itself differentiate (see gradgradcheck)."""
    ys = [y for y in _as_tuple(fn(*inputs)) if isinstance(y, Tensor) and y.requires_grad]
    return np.concatenate([backend.as_numpy(y.data).ravel() for y in ys]) if ys else np.zeros(0)


def _numerical_jacobian(fn, inputs, x, eps):
    """Columns d(outputs)/d(x_j) by central differences, shape (n_outputs, x.size)."""
    flat = x.data.reshape(-1)  # a view: writing it perturbs x in place
    cols = []
    for j in range(flat.size):
        old = flat[j].item()
        flat[j] = old + eps
        f_plus = _evaluate(fn, inputs)
        flat[j] = old - eps
        f_minus = _evaluate(fn, inputs)
        flat[j] = old
        cols.append((f_plus - f_minus) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


def _compare(analytic, numerical, atol, rtol, describe, allow_nonfinite):
    finite = np.isfinite(analytic) & np.isfinite(numerical)
    if not finite.all():
        if not allow_nonfinite:
            # err / bound below is NaN for a NaN, and NaN > 1 is False: without this a NaN passed
            where = np.unravel_index(int(np.argmin(finite)), finite.shape)
            raise GradcheckError(
                f"gradcheck failed for {describe(where)}: analytic {analytic[where]:.10g}, numerical "
                f"{numerical[where]:.10g}; {int((~finite).sum())} of {finite.size} derivatives are not finite "
                "(NaN or inf). Pass allow_nonfinite=True if that is expected: those values are then not compared"
            )
        analytic, numerical = np.where(finite, analytic, 0.0), np.where(finite, numerical, 0.0)
    err = np.abs(analytic - numerical)
    bound = atol + rtol * np.abs(numerical)
    excess = err / bound
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else None
    if worst is not None and excess[worst] > 1:
        a, n = analytic[worst], numerical[worst]
        rel = abs(a - n) / max(abs(n), 1e-300)
        raise GradcheckError(
            f"gradcheck failed for {describe(worst)}: analytic {a:.10g}, numerical {n:.10g}, "
            f"absolute error {abs(a - n):.3g}, relative error {rel:.3g} (atol={atol:g}, rtol={rtol:g}); "
            f"{int((excess > 1).sum())} of {excess.size} values are out of tolerance"
        )


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, allow_nonfinite=False):
    """Check ``fn``'s backward against central differences, in float64.

    ``inputs`` is a Tensor or a sequence of them (other values are passed
    through unchanged). Every floating input is copied to float64; those that
    require grad are checked. Returns True, or raises `GradcheckError`
    naming the input, the worst element, both values and the relative error.
    Also fails if ``fn`` modifies its inputs, and where a derivative, analytic or
    numerical, is NaN or inf, unless ``allow_nonfinite``: then those are not compared.
    """
    inputs, checked = _prepare_inputs(inputs)
    before = [backend.as_numpy(inputs[i].data).copy() for i in checked]
    outputs = _differentiable_outputs(fn, fn(*inputs))
    for i, old in zip(checked, before):
        if not np.array_equal(backend.as_numpy(inputs[i].data), old, equal_nan=True):
            raise GradcheckError(f"gradcheck: {getattr(fn, '__name__', 'fn')} modified input {i} in place")
    targets = [inputs[i] for i in checked]
    sizes = [y.data.size for y in outputs]
    n_out = int(np.sum(sizes))
    xp = backend.get_array_module(outputs[0].data)

    def analytic_for(vectors):
        gs = grad(outputs, targets, grad_outputs=vectors, retain_graph=True, allow_unused=True)
        return [np.zeros(t.shape) if g is None else backend.as_numpy(g.data) for g, t in zip(gs, targets)]

    def split(flat):
        parts, start = [], 0
        for y, n in zip(outputs, sizes):
            parts.append(Tensor._wrap(xp.asarray(flat[start:start + n].reshape(y.shape))))
            start += n
        return parts

    full = n_out <= FULL_JACOBIAN_MAX_OUTPUTS
    if full:  # analytic Jacobian row by row: one backward per output element
        eye = np.eye(n_out)
        rows = [analytic_for(split(eye[k])) for k in range(n_out)]
    else:
        v = np.random.default_rng(seed).standard_normal(n_out)
        projected = analytic_for(split(v))

    for pos, i in enumerate(checked):
        x = inputs[i]
        J = _numerical_jacobian(fn, inputs, x, eps)
        if J.shape[0] != n_out:
            raise GradcheckError(f"gradcheck: fn returned {J.shape[0]} values on re-evaluation, first {n_out}")
        if full:
            analytic = np.stack([rows[k][pos].ravel() for k in range(n_out)])
            _compare(analytic, J, atol, rtol,
                     lambda w: f"input {i} (shape {x.shape}), d output[{w[0]}] / d x{_index(x.shape, w[1])}",
                     allow_nonfinite)
        else:
            analytic = projected[pos].reshape(-1)
            _compare(analytic, v @ J, atol, rtol,
                     lambda w: f"input {i} (shape {x.shape}) at element {_index(x.shape, w[0])}, "
                               f"gradient of a random projection of the output", allow_nonfinite)
    return True


def _index(shape, flat):
    return [int(i) for i in np.unravel_index(int(flat), shape)] if shape else "[]"


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, allow_nonfinite=False):
    """Check second derivatives: gradcheck the map (inputs, v) -> J^T v built with
    ``create_graph=True``, for a random upstream gradient v."""
    inputs, checked = _prepare_inputs(inputs)
    outputs = _differentiable_outputs(fn, fn(*inputs))
    rng = np.random.default_rng(seed + 1)
    vs = [Tensor(backend.to_device(rng.standard_normal(y.shape), y.device), requires_grad=True) for y in outputs]
    n = len(inputs)

    def first_derivatives(*args):
        xs, v = args[:n], args[n:]
        ys = [y for y in _as_tuple(fn(*xs)) if isinstance(y, Tensor) and y.requires_grad]
        gs = grad(ys, [xs[i] for i in checked], grad_outputs=list(v), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None and g.requires_grad)

    return gradcheck(first_derivatives, list(inputs) + vs, eps=eps, atol=atol, rtol=rtol, seed=seed,
                     allow_nonfinite=allow_nonfinite)
