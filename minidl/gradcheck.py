"""Finite-difference gradient checking, with error bars.

The analytic gradient (what ``backward`` computes) is compared with central
differences. Each derivative is estimated at two steps, h = ``eps`` and 2h,

    D(h) = (f(x + h) - f(x - h)) / 2h = f'(x) + c h^2 + O(h^4),

and combined by Richardson extrapolation, R = D(h) + (D(h) - D(2h)) / 3, whose
h^2 terms cancel. The two estimates also measure their own error: the
truncation error of D(h) is (D(h) - D(2h)) / 3 to leading order, so
|D(h) - D(2h)| is a conservative error bar for R. Rounding adds a floor:
each f carries an error of about K u |f| (u the unit roundoff, K a few
roundings per op), which R amplifies by 1.5 / h. The analytic gradient must
agree with R within ``SAFETY`` times that error bar. In float64 with h = 1e-5
the bar is about 1e-10 to 1e-9 relative for smooth ops, so a backward off by
a relative 1e-6 fails; a fixed tolerance (PyTorch's rtol=1e-3) lets it pass.

The same five points f(x - 2h), ..., f(x + 2h) also show kinks. Where f is
smooth, the slopes of the four intervals between them change linearly, so
their second differences are O(h^2 f'''); a kink (ReLU at 0, a max-pool tie,
abs, clip's bounds) within 2h puts a jump of the size of the derivative in
them. That raises `NondifferentiableError` instead of a verdict that would be
right or wrong at random.

For a vector output, checking every element of the Jacobian costs one
backward pass per output element. Instead the output is projected onto a
random vector v: the scalar <v, f(x)> has gradient J^T v, which one backward
pass gives; a wrong Jacobian entry changes J^T v for almost every v. Small
outputs are checked element by element, which names the output element too.
Large inputs are perturbed along a few random directions d instead of one
element at a time (Chainer's ``check_backward``): the derivative of f(x + t d)
at t = 0 is J d, so four evaluations per direction check every element at once.
"""
import numpy as np

from minidl import backend
from minidl.tensor import Tensor, grad

FULL_JACOBIAN_MAX_OUTPUTS = 16
# Above this many elements an input is checked along random directions (mode="auto").
ELEMENTWISE_MAX_SIZE = 512
DIRECTIONS = 3
# A float64 evaluation of f is taken to be within ROUNDINGS * u * max|f| of the exact value.
ROUNDINGS = 32
# How far beyond its estimated error bar a numerical derivative may be from the analytic one.
SAFETY = 4.0
# A jump in the slopes larger than this fraction of the largest derivative is a kink, not curvature.
KINK_FRACTION = 1e-5
_U = np.finfo(np.float64).eps / 2


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the finite-difference one."""


class NondifferentiableError(GradcheckError):
    """An input is within the finite-difference steps of a point where the function has a kink."""


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


class _Samples:
    """f at x + t for t in (-2h, -h, h, 2h) along each column (an element or a direction).

    ``F[k]`` has shape (columns, outputs); ``t[k]`` the step actually taken, per column: for an
    element, (x + h) - x, which is exact, so rounding of the input never enters the quotient."""

    STEPS = (-2, -1, 1, 2)

    def __init__(self, F, t, f0):
        self.F, self.t, self.f0 = F, t, f0

    def project(self, w):
        """The samples of w @ f: w is (rows, outputs), or None for f itself (whose NaNs stay where
        they are, where a product with the identity would spread them)."""
        return self if w is None else _Samples([F @ w.T for F in self.F], self.t, self.f0 @ w.T)


def _sample_elements(fn, inputs, x, h, f0, columns):
    """Samples along the elements ``columns`` of x (flat indices), one at a time."""
    flat = x.data.reshape(-1)  # a view: writing it perturbs x in place
    F = [np.empty((len(columns), f0.size)) for _ in _Samples.STEPS]
    t = [np.empty(len(columns)) for _ in _Samples.STEPS]
    for c, j in enumerate(columns):
        old = flat[j].item()
        for k, m in enumerate(_Samples.STEPS):
            flat[j] = old + m * h
            t[k][c] = flat[j].item() - old
            F[k][c] = _evaluate(fn, inputs)
        flat[j] = old
    return _Samples(F, t, f0)


def _sample_directions(fn, inputs, x, h, f0, directions):
    """Samples along each row of ``directions`` (each x's size), all of x at once."""
    x0 = x.data.copy()
    F = [np.empty((len(directions), f0.size)) for _ in _Samples.STEPS]
    for c, d in enumerate(directions):
        d = backend.to_device(d.reshape(x.shape), x.device)
        for k, m in enumerate(_Samples.STEPS):
            x.data[...] = x0 + (m * h) * d
            F[k][c] = _evaluate(fn, inputs)
    x.data[...] = x0
    t = [np.full(len(directions), m * h) for m in _Samples.STEPS]
    return _Samples(F, t, f0)


def _richardson(s, noise):
    """The Richardson estimate and its error bar, each (columns, rows).

    ``noise`` (rows,) bounds the rounding error of one evaluation of each row of f."""
    (fm2, fm1, fp1, fp2), (tm2, tm1, tp1, tp2) = s.F, [t[:, None] for t in s.t]
    d1 = (fp1 - fm1) / (tp1 - tm1)
    d2 = (fp2 - fm2) / (tp2 - tm2)
    rounding = 1.5 * noise / tp1  # 4/3 * 2/(2h) + 1/3 * 2/(4h) = 1.5/h per unit of error in f
    return d1 + (d1 - d2) / 3, np.abs(d1 - d2) + rounding


def _bends(s):
    """The slopes of [-2h, -h], [-h, 0], [0, h], [h, 2h] and their two second differences."""
    (fm2, fm1, fp1, fp2), (tm2, tm1, tp1, tp2) = s.F, [t[:, None] for t in s.t]
    slopes = ((fm1 - fm2) / (tm1 - tm2), (s.f0 - fm1) / -tm1, (fp1 - s.f0) / tp1, (fp2 - fp1) / (tp2 - tp1))
    return slopes, slopes[2] - 2 * slopes[1] + slopes[0], slopes[3] - 2 * slopes[2] + slopes[1]


def _kinks(s, resample, largest, noise):
    """Which (column, row) pairs have a kink within 2h, and the slopes, to show them.

    A bend (a second difference of the slopes) above ``KINK_FRACTION`` of the largest derivative
    is suspect. Curvature bends the slopes too, but smoothly: its two bends agree, and at half the
    step they shrink fourfold (they are h^2 times the third derivative). A kink's do neither: a
    jump J between two slopes gives bends like (J, -J), and about as much at any step that spans it."""
    slopes, b1, b2 = _bends(s)
    bend = np.maximum(np.abs(b1), np.abs(b2))
    h = s.t[2][:, None]
    suspect = bend > KINK_FRACTION * largest + 8 * SAFETY * noise / h  # each bend weighs f by 8/h in all
    kinks = suspect & (np.abs(b1 - b2) > 0.5 * bend)
    smooth_looking = suspect & ~kinks
    if smooth_looking.any():
        columns = np.flatnonzero(smooth_looking.any(axis=1))
        _, c1, c2 = _bends(resample(columns))
        kinks[columns] |= smooth_looking[columns] & (np.maximum(np.abs(c1), np.abs(c2)) > 0.4 * bend[columns])
    return kinks, bend, slopes


def _check(analytic, s, resample, weights, scale, atol, rtol, describe, allow_nonfinite, extra_bar=0.0):
    """Judge ``analytic`` (columns, rows) against the samples ``s`` of f, projected on ``weights``.

    ``resample(columns)`` gives the samples of those columns at half the step."""
    noise = ROUNDINGS * _U * scale * (1.0 if weights is None else np.abs(weights).sum(axis=1))
    s = s.project(weights)
    numerical, bar = _richardson(s, noise)
    bar = bar + extra_bar
    finite = np.isfinite(analytic) & np.isfinite(numerical) & np.isfinite(bar)
    if not finite.all():
        if not allow_nonfinite:
            # err / bound below is NaN for a NaN, and NaN > 1 is False: without this a NaN passed.
            # A non-finite analytic value is named first: it is the likelier bug.
            bad = ~np.isfinite(analytic) if not np.isfinite(analytic).all() else ~finite
            where = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise GradcheckError(
                f"gradcheck failed for {describe(where)}: analytic {analytic[where]:.10g}, numerical "
                f"{numerical[where]:.10g}; {int((~finite).sum())} of {finite.size} derivatives are not finite "
                "(NaN or inf). Pass allow_nonfinite=True if that is expected: those values are then not compared"
            )
        analytic, numerical, bar = (np.where(finite, a, 0.0) for a in (analytic, numerical, bar))
    largest = np.abs(numerical).max() if numerical.size else 0.0
    with np.errstate(invalid="ignore"):  # non-finite samples were allowed above; their bends are NaN
        kinks, bend, slopes = _kinks(s, lambda columns: resample(columns).project(weights), largest, noise)
    kinks &= finite
    if kinks.any():
        where = np.unravel_index(int(np.argmax(np.where(kinks, bend, -1.0))), bend.shape)
        h = s.t[2][where[0]]
        raise NondifferentiableError(
            f"gradcheck: {describe(where)} is within 2*eps = {2 * h:.2g} of a point where the function is "
            f"not differentiable: the slopes on [-2h, -h], [-h, 0], [0, h], [h, 2h] (h = eps) are "
            + ", ".join(f"{sl[where]:.6g}" for sl in slopes)
            + ", which jump where a smooth function's change smoothly. Move the input away from the kink "
            "(ReLU or abs at 0, a tie in max or max pooling, clip's bounds) or pass a smaller eps"
        )
    err = np.abs(analytic - numerical)
    if atol is None and rtol is None:
        tol = SAFETY * bar + ROUNDINGS * _U * np.abs(analytic)
        rule = f"error bar {SAFETY:g} x"
    else:
        tol = (atol or 0.0) + (rtol or 0.0) * np.abs(numerical)
        rule = f"atol={atol or 0:g}, rtol={rtol or 0:g}; the error bar is"
    excess = np.where(err > 0, err / np.where(tol > 0, tol, 1e-300), 0.0)
    if excess.size and excess.max() > 1:
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        a, n = analytic[worst], numerical[worst]
        rel = abs(a - n) / max(abs(n), 1e-300)
        raise GradcheckError(
            f"gradcheck failed for {describe(worst)}: analytic {a:.12g}, numerical {n:.12g} +- {bar[worst]:.2g}, "
            f"absolute error {abs(a - n):.3g}, relative error {rel:.3g}, {excess[worst]:.3g} times the "
            f"tolerance ({rule} {bar[worst]:.2g}); {int((excess > 1).sum())} of {excess.size} values are out "
            "of tolerance"
        )


def gradcheck(fn, inputs, eps=1e-5, atol=None, rtol=None, seed=0, allow_nonfinite=False, mode="auto",
              directions=DIRECTIONS):
    """Check ``fn``'s backward against central differences, in float64, within their error bars.

    ``inputs`` is a Tensor or a sequence of them (other values are passed
    through unchanged). Every floating input is copied to float64; those that
    require grad are checked. Each numerical derivative is a Richardson
    extrapolation from steps ``eps`` and ``2*eps`` with an estimate of its own
    error; the analytic gradient must agree within a few times that error bar.
    ``atol``/``rtol``, if given, replace the error bar by the fixed tolerance
    ``atol + rtol * |numerical|``.

    ``mode`` is "elementwise" (perturb one input element at a time: names the
    element), "directional" (perturb along ``directions`` random directions:
    four evaluations each, whatever the input's size) or "auto", which takes
    "directional" for inputs of more than ``ELEMENTWISE_MAX_SIZE`` elements.

    Returns True, or raises `GradcheckError` naming the input, the worst
    element, both values, the error bar and the relative error; or
    `NondifferentiableError` where an input sits within ``2*eps`` of a kink.
    Also fails if ``fn`` modifies its inputs, and where a derivative, analytic or
    numerical, is NaN or inf, unless ``allow_nonfinite``: then those are not compared.
    """
    if mode not in ("auto", "elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be 'auto', 'elementwise' or 'directional', got {mode!r}")
    if not (isinstance(directions, int) and directions >= 1):
        raise ValueError(f"gradcheck: directions must be an int of at least 1 (checking none would pass "
                         f"anything), got {directions!r}")
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
    f0 = np.concatenate([backend.as_numpy(y.data).ravel() for y in outputs])
    rng = np.random.default_rng(seed)

    def analytic_for(vectors):
        gs = grad(outputs, targets, grad_outputs=vectors, retain_graph=True, allow_unused=True)
        return [np.zeros(t.shape) if g is None else backend.as_numpy(g.data) for g, t in zip(gs, targets)]

    def split(flat):
        parts, start = [], 0
        for y, n in zip(outputs, sizes):
            parts.append(Tensor._wrap(xp.asarray(flat[start:start + n].reshape(y.shape))))
            start += n
        return parts

    # weights: the rows of f that are compared, as combinations of its elements
    full = n_out <= FULL_JACOBIAN_MAX_OUTPUTS
    weights = None if full else rng.standard_normal((1, n_out))
    rows = [analytic_for(split(w)) for w in (np.eye(n_out) if full else weights)]  # d(w_r . f)/d(input pos)

    for pos, i in enumerate(checked):
        x = inputs[i]
        A = np.stack([r[pos].ravel() for r in rows])  # (rows, x.size)
        directional = mode == "directional" or (mode == "auto" and x.data.size > ELEMENTWISE_MAX_SIZE)
        if directional:
            D = rng.standard_normal((directions, x.data.size))
            s = _sample_directions(fn, inputs, x, eps, f0, D)
            resample = lambda columns, x=x, D=D: _sample_directions(fn, inputs, x, eps / 2, f0, D[columns])  # noqa: E731
            analytic = D @ A.T
            # rounding of x + t d in the input: |A| u |x| per unit step, over the step h
            extra = 1.5 * _U * (np.abs(A) @ np.abs(backend.as_numpy(x.data)).ravel()) / eps
            describe = lambda w, i=i, x=x: (  # noqa: E731
                f"input {i} (shape {x.shape}), the derivative along random direction {w[0]} of "
                + (f"output[{w[1]}]" if full else "a random projection of the output"))
        else:
            s = _sample_elements(fn, inputs, x, eps, f0, range(x.data.size))
            resample = lambda columns, x=x: _sample_elements(fn, inputs, x, eps / 2, f0, columns)  # noqa: E731
            analytic, extra = A.T, 0.0
            describe = lambda w, i=i, x=x: (  # noqa: E731
                f"input {i} (shape {x.shape}), d output[{w[1]}] / d x{_index(x.shape, w[0])}" if full else
                f"input {i} (shape {x.shape}) at element {_index(x.shape, w[0])}, gradient of a random "
                "projection of the output")
        if any(F.shape[1] != n_out for F in s.F):
            raise GradcheckError(f"gradcheck: fn returned a different number of values on re-evaluation, first {n_out}")
        scale = max(_largest(f0), *(_largest(F) for F in s.F))
        _check(analytic, s, resample, weights, scale, atol, rtol, describe, allow_nonfinite, extra)
    return True


def _largest(a):
    """The largest finite magnitude in a (0 if none): the scale of f's rounding errors."""
    a = np.abs(a[np.isfinite(a)])
    return float(a.max()) if a.size else 0.0


def _index(shape, flat):
    return [int(i) for i in np.unravel_index(int(flat), shape)] if shape else "[]"


def gradgradcheck(fn, inputs, eps=1e-5, atol=None, rtol=None, seed=0, allow_nonfinite=False, mode="auto",
                  directions=DIRECTIONS):
    """Check second derivatives: gradcheck the map (inputs, v) -> J^T v built with
    ``create_graph=True``, for a random upstream gradient v. The arguments are gradcheck's."""
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
                     allow_nonfinite=allow_nonfinite, mode=mode, directions=directions)
