"""Stochastic gradient descent, with optional momentum, dampening, Nesterov momentum and L2 weight decay."""
from minidl.optim.optimizer import Optimizer, is_bool, nonnegative, required, unit_interval


class SGD(Optimizer):
    r"""Stochastic gradient descent (PyTorch's update rule).

    With gradient :math:`g_t`, learning rate :math:`\eta`, weight decay
    :math:`\lambda`, momentum :math:`\mu` and dampening :math:`\tau`, each step
    does

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
        b_t &= g_t \ \text{on the first step, else}\ \mu\,b_{t-1} + (1 - \tau)\,g_t \\
        d_t &= g_t + \mu\,b_t \ \text{(nesterov)}, \quad b_t \ \text{(momentum)}, \quad g_t \ \text{(}\mu = 0\text{)} \\
        \theta_t &= \theta_{t-1} - \eta\,d_t

    The first step's buffer is the gradient itself, undamped. Note that
    :math:`\eta` multiplies the buffer, not the gradient inside it (unlike
    Sutskever et al.), so changing ``lr`` mid-run takes effect at once.

    ``lr`` has no default. ``nesterov`` needs ``momentum > 0`` and
    ``dampening == 0``. State per parameter: ``'momentum_buffer'`` (only with
    momentum).
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr=required, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, group):
        self._check(group, "lr", nonnegative, "a number >= 0")
        self._check(group, "momentum", nonnegative, "a number >= 0")
        self._check(group, "dampening", unit_interval, "a number in [0, 1]")
        self._check(group, "weight_decay", nonnegative, "a number >= 0")
        self._check(group, "nesterov", is_bool, "True or False")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']!r} and dampening={group['dampening']!r}")

    def _update(self, p, grad, state, group):
        momentum = group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()  # a copy: it is updated in place later
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad
