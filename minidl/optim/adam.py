"""Adam (Kingma & Ba, 2015) with L2 weight decay added to the gradient."""
import math

from minidl import backend, kernels
from minidl.optim.optimizer import Optimizer, nonnegative, unit_interval


def _betas(v):
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(unit_interval(b) and b < 1 for b in v)


class Adam(Optimizer):
    r"""Adam (PyTorch's update rule, without amsgrad).

    With gradient :math:`g_t` at step :math:`t = 1, 2, \dots`, learning rate
    :math:`\eta`, ``betas`` :math:`(\beta_1, \beta_2)` and weight decay
    :math:`\lambda`:

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\,g_t, \qquad m_0 = 0 \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\,g_t^2, \qquad v_0 = 0 \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,
                    \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    The bias corrections :math:`1 - \beta^t` undo the pull of the zero start
    towards 0. :math:`\epsilon` is added after the correction, as in PyTorch.
    Weight decay here is L2 regularisation (through the gradient), not AdamW's
    decoupled decay. State per parameter: ``'step'``, ``'exp_avg'`` (m),
    ``'exp_avg_sq'`` (v).
    """

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_counts = ("step",)
    _state_required = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, group):
        self._check(group, "lr", nonnegative, "a number >= 0")
        self._check(group, "betas", _betas, "a pair (beta1, beta2) of numbers in [0, 1)")
        self._check(group, "eps", nonnegative, "a number >= 0")
        self._check(group, "weight_decay", nonnegative, "a number >= 0")

    def _update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            xp = backend.get_array_module(p.data)
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        t = state["step"]
        # The rule above in one pass over the parameter (kernels.adam_update), not one per term.
        kernels.adam_update(p.data, grad, state["exp_avg"], state["exp_avg_sq"], beta1, beta2,
                            group["lr"] / (1 - beta1 ** t), math.sqrt(1 - beta2 ** t), group["eps"],
                            group["weight_decay"])


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019; PyTorch's update rule, without amsgrad): Adam with
    decoupled weight decay. The decay shrinks the parameter directly,

    .. math::

        \theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1},

    and Adam's step (above, with :math:`\lambda = 0`) follows. Through the gradient, as in `Adam`,
    the decay would be divided by :math:`\sqrt{v_t}` like the gradient is, so parameters with large
    gradients would hardly decay; decoupled, every parameter decays at the same rate. PyTorch's
    default ``weight_decay`` is 0.01, and so is this one's.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, p, grad, state, group):
        if group["weight_decay"]:
            p.data *= 1 - group["lr"] * group["weight_decay"]
        super()._update(p, grad, state, dict(group, weight_decay=0))
