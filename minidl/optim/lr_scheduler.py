"""Learning-rate schedulers, with PyTorch's semantics.

A scheduler changes ``group['lr']`` in its optimizer's parameter groups. Call
``scheduler.step()`` once per epoch, after that epoch's ``optimizer.step()``
calls (``ReduceLROnPlateau.step(metric)`` takes the epoch's validation
metric)::

    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(90):
        train_one_epoch(model, opt)
        sched.step()

Epoch-based schedulers record each group's starting rate as
``group['initial_lr']`` (kept if already there, e.g. from a loaded optimizer)
and count epochs in ``last_epoch``, which is 0 right after construction.
They update the current rate multiplicatively (the "chainable" form PyTorch
uses), so the sequence matches PyTorch's to the last bit.
"""
import math
import numbers

from minidl import _checks
from minidl.optim.optimizer import Optimizer
from minidl.tensor import Tensor


def _positive_number(v):
    return _checks.is_real(v) and v > 0


class LRScheduler:
    """Base class of the epoch-based schedulers: subclasses define
    ``get_lr()``, the rates for epoch ``last_epoch`` given the current ones."""

    def __init__(self, optimizer):
        self.optimizer = self._attach(optimizer)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()  # epoch 0: get_lr() leaves the rates as they are

    def _attach(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got {type(optimizer).__name__}")
        return optimizer

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__}.get_lr")

    def step(self):
        """Advance one epoch and set each group's lr for it."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer (whose own state_dict holds the rates):
        plain numbers, strings and lists, so ``mdl.save`` can write it."""
        return {k: list(v) if isinstance(v, list) else v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` of a scheduler of the same kind."""
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            missing, unknown = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
            raise ValueError(f"{name}.load_state_dict: not a {name} state dict (missing keys {missing}, "
                             f"unknown keys {unknown})")
        vars(self).update({k: list(v) if isinstance(v, list) else v for k, v in state_dict.items()})


class StepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every ``step_size`` epochs:
    :math:`\eta_e = \eta_0\,\gamma^{\lfloor e / s \rfloor}`.

    ResNet's schedule is ``StepLR(opt, 30, 0.1)``; GoogLeNet's "decrease by 4%
    every 8 epochs" is ``StepLR(opt, 8, 0.96)``.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        _checks.check_int("StepLR", "step_size", step_size, 1)
        _checks.require(_positive_number(gamma), "StepLR", "gamma", gamma, "a number > 0")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ExponentialLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every epoch: :math:`\eta_e = \eta_0\,\gamma^e`."""

    def __init__(self, optimizer, gamma):
        _checks.require(_positive_number(gamma), "ExponentialLR", "gamma", gamma, "a number > 0")
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ReduceLROnPlateau(LRScheduler):
    r"""Multiply the rate by ``factor`` when a metric has stopped improving.

    ``step(metric)`` compares the metric with the best so far. It improves on
    ``best`` when (``mode='min'``)

    .. math::

        m < \text{best}\,(1 - \text{threshold}) \ \text{(rel)} \quad\text{or}\quad
        m < \text{best} - \text{threshold} \ \text{(abs)}

    (``mode='max'``: :math:`m > \text{best}\,(1 + \text{threshold})` or
    :math:`m > \text{best} + \text{threshold}`). Each epoch without improvement
    counts as bad; after more than ``patience`` bad epochs in a row each
    group's rate becomes :math:`\max(\eta\,\text{factor}, \text{min\_lr})`
    (skipped when that changes it by ``eps`` or less), and the next
    ``cooldown`` epochs count as neither good nor bad.

    With ``patience=0`` the rate drops after the first bad epoch. Unlike the
    epoch-based schedulers it records no ``initial_lr`` (as in PyTorch):
    its rates follow the metric, not a schedule.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        # No super().__init__(): there is no epoch-0 step and no initial_lr to record.
        self.optimizer = self._attach(optimizer)
        n = len(optimizer.param_groups)
        name = "ReduceLROnPlateau"
        _checks.require(_checks.is_real(factor) and 0 <= factor < 1, name, "factor", factor, "a number in [0, 1)")
        _checks.check_int(name, "patience", patience, 0)
        _checks.check_int(name, "cooldown", cooldown, 0)
        _checks.require(_checks.is_real(eps) and eps >= 0, name, "eps", eps, "a number >= 0")
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: min_lr has {len(min_lr)} values, but the optimizer has "
                                 f"{n} parameter groups")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * n
        for v in self.min_lrs:
            _checks.require(_checks.is_real(v) and v >= 0, name, "min_lr", min_lr,
                            "a number >= 0 or a list of them, one per parameter group")
        self.factor = factor
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self._check_modes()
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _check_modes(self):
        name = "ReduceLROnPlateau"
        _checks.require(self.mode in ("min", "max"), name, "mode", self.mode, "'min' or 'max'")
        _checks.require(self.threshold_mode in ("rel", "abs"), name, "threshold_mode", self.threshold_mode,
                        "'rel' or 'abs'")
        _checks.require(_checks.is_real(self.threshold) and self.threshold >= 0, name, "threshold", self.threshold,
                        "a number >= 0")

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_better(self, current, best):
        """Whether ``current`` improves on ``best`` by more than the threshold."""
        if self.mode == "min":
            return current < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return current > (best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics):
        """Record one epoch's metric (a number or a one-element tensor) and
        lower the rates if it has not improved for more than ``patience`` epochs."""
        if isinstance(metrics, Tensor):
            metrics = metrics.item()
        if not isinstance(metrics, numbers.Real):
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number or a one-element tensor, "
                            f"got {type(metrics).__name__}")
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(self.min_lrs) != len(groups):  # a group was added since construction
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer now has {len(groups)} parameter groups but "
                                   f"min_lr lists {len(self.min_lrs)}; set scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def load_state_dict(self, state_dict):
        before = dict(vars(self))
        super().load_state_dict(state_dict)
        try:
            self._check_modes()
        except ValueError:
            vars(self).update(before)  # a bad dict changes nothing
            raise
