"""RMSprop (Hinton's lecture 6e), with optional momentum and the centered variant (Graves, 2013)."""
from minidl import backend
from minidl.optim.optimizer import Optimizer, is_bool, nonnegative, unit_interval


class RMSprop(Optimizer):
    r"""RMSprop (PyTorch's update rule).

    With gradient :math:`g_t`, learning rate :math:`\eta`, smoothing
    :math:`\alpha`, momentum :math:`\mu` and weight decay :math:`\lambda`:

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
        v_t &= \alpha v_{t-1} + (1 - \alpha)\,g_t^2, \qquad v_0 = 0 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha)\,g_t, \qquad \bar g_0 = 0
                    \quad \text{(centered only)} \\
        a_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{(centered)}, \quad
               \sqrt{v_t} + \epsilon \ \text{(otherwise)} \\
        b_t &= \mu\,b_{t-1} + g_t / a_t, \quad b_0 = 0; \qquad
        \theta_t = \theta_{t-1} - \eta\,b_t \ \text{(}\mu > 0\text{)} \\
        \theta_t &= \theta_{t-1} - \eta\,g_t / a_t \ \text{(}\mu = 0\text{)}

    Centered RMSprop divides by an estimate of the gradient's standard
    deviation instead of its root mean square. There is no bias correction.
    State per parameter: ``'step'``, ``'square_avg'`` (v), ``'momentum_buffer'``
    (b, with momentum), ``'grad_avg'`` (:math:`\bar g`, centered).
    """

    _state_arrays = ("square_avg", "momentum_buffer", "grad_avg")
    _state_counts = ("step",)
    _state_required = ("step", "square_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _validate(self, group):
        self._check(group, "lr", nonnegative, "a number >= 0")
        self._check(group, "alpha", unit_interval, "a number in [0, 1]")
        self._check(group, "eps", nonnegative, "a number >= 0")
        self._check(group, "weight_decay", nonnegative, "a number >= 0")
        self._check(group, "momentum", nonnegative, "a number >= 0")
        self._check(group, "centered", is_bool, "True or False")

    def _update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p.data))
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * grad * grad
        if group["centered"]:
            g_avg = state.setdefault("grad_avg", xp.zeros_like(p.data))
            g_avg *= alpha
            g_avg += (1 - alpha) * grad
            avg = xp.sqrt(v - g_avg * g_avg)
        else:
            avg = xp.sqrt(v)
        avg += group["eps"]
        if momentum > 0:
            buf = state.setdefault("momentum_buffer", xp.zeros_like(p.data))
            buf *= momentum
            buf += grad / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * grad / avg
