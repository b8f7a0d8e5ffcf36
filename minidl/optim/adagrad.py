"""Adagrad (Duchi, Hazan & Singer, 2011)."""
from minidl import backend
from minidl.optim.optimizer import Optimizer, nonnegative


class Adagrad(Optimizer):
    r"""Adagrad (PyTorch's update rule); also available as ``AdaGrad``.

    With gradient :math:`g_t` at step :math:`t = 1, 2, \dots`, learning rate
    :math:`\eta`, ``lr_decay`` :math:`\delta`, weight decay :math:`\lambda` and
    ``initial_accumulator_value`` :math:`s_0`:

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
        \eta_t &= \frac{\eta}{1 + (t - 1)\,\delta} \\
        s_t &= s_{t-1} + g_t^2 \\
        \theta_t &= \theta_{t-1} - \eta_t\,\frac{g_t}{\sqrt{s_t} + \epsilon}

    Each coordinate's step shrinks as its squared gradients add up, so rarely
    updated coordinates keep larger steps. State per parameter: ``'step'``,
    ``'sum'`` (s).
    """

    _state_arrays = ("sum",)
    _state_counts = ("step",)
    _state_required = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _validate(self, group):
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check(group, key, nonnegative, "a number >= 0")

    def _update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        if not state:
            state.update(step=0, sum=xp.full_like(p.data, group["initial_accumulator_value"]))
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += grad * grad
        p.data -= lr * grad / (xp.sqrt(s) + group["eps"])


AdaGrad = Adagrad
