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
from minidl.optim.optimizer import Optimizer, nonnegative
from minidl.tensor import Tensor


def _positive_number(v):
    return _checks.is_real(v) and v > 0


def _check_rates(where, name, value):
    """A list of learning rates (or rate floors), one per parameter group."""
    _checks.require(isinstance(value, (list, tuple)) and all(nonnegative(v) for v in value), where, name, value,
                    "a list of numbers >= 0, one per parameter group")


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
        """Restore a ``state_dict()`` of a scheduler of the same kind. Its settings
        are held to the rules the constructor applies, its counters must be ints
        >= 0 and its rates numbers >= 0; nothing changes unless all of it is valid."""
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            missing = sorted(map(str, expected - set(state_dict)))
            unknown = sorted(map(str, set(state_dict) - expected))
            raise ValueError(f"{name}.load_state_dict: not a {name} state dict (missing keys {missing}, "
                             f"unknown keys {unknown})")
        self._check_state(state_dict, f"{name}.load_state_dict")
        vars(self).update({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in state_dict.items()})

    def _check_settings(self, settings, where):
        """Subclasses check their constructor's settings here (``settings`` maps their names to values),
        raising ``_checks``' ValueError with ``where``: the constructor passes its arguments, load_state_dict
        the loaded state, so that both are held to one rule."""

    def _check_state(self, state, where):
        """A whole state to load: the settings, the epoch count and the rates."""
        self._check_settings(state, where)
        _checks.check_int(where, "last_epoch", state["last_epoch"], 0)
        _check_rates(where, "base_lrs", state["base_lrs"])
        _check_rates(where, "_last_lr", state["_last_lr"])


class StepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every ``step_size`` epochs:
    :math:`\eta_e = \eta_0\,\gamma^{\lfloor e / s \rfloor}`.

    ResNet's schedule is ``StepLR(opt, 30, 0.1)``; GoogLeNet's "decrease by 4%
    every 8 epochs" is ``StepLR(opt, 8, 0.96)``.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self._check_settings({"step_size": step_size, "gamma": gamma}, type(self).__name__)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def _check_settings(self, settings, where):
        _checks.check_int(where, "step_size", settings["step_size"], 1)
        _checks.require(_positive_number(settings["gamma"]), where, "gamma", settings["gamma"], "a number > 0")

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ExponentialLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every epoch: :math:`\eta_e = \eta_0\,\gamma^e`."""

    def __init__(self, optimizer, gamma):
        self._check_settings({"gamma": gamma}, type(self).__name__)
        self.gamma = gamma
        super().__init__(optimizer)

    def _check_settings(self, settings, where):
        _checks.require(_positive_number(settings["gamma"]), where, "gamma", settings["gamma"], "a number > 0")

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


def _min_lrs(where, name, min_lr, n):
    """ReduceLROnPlateau's ``min_lr``, a number or a list of ``n``, as (default_min_lr, min_lrs)."""
    if isinstance(min_lr, (list, tuple)):
        if len(min_lr) != n:
            raise ValueError(f"{where}: {name} has {len(min_lr)} values, but the optimizer has {n} parameter "
                             "groups")
        default, floors = None, list(min_lr)
    else:
        default, floors = min_lr, [min_lr] * n
    for v in floors:
        _checks.require(nonnegative(v), where, name, min_lr,
                        "a number >= 0 or a list of them, one per parameter group")
    return default, floors


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
        name = type(self).__name__
        settings = dict(mode=mode, factor=factor, patience=patience, threshold=threshold,
                        threshold_mode=threshold_mode, cooldown=cooldown, eps=eps)
        self._check_settings(settings, name)
        self.default_min_lr, self.min_lrs = _min_lrs(name, "min_lr", min_lr, len(optimizer.param_groups))
        vars(self).update(settings)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _check_settings(self, s, where):
        _checks.require(s["mode"] in ("min", "max"), where, "mode", s["mode"], "'min' or 'max'")
        _checks.require(_checks.is_real(s["factor"]) and 0 <= s["factor"] < 1, where, "factor", s["factor"],
                        "a number in [0, 1)")
        _checks.check_int(where, "patience", s["patience"], 0)
        _checks.require(nonnegative(s["threshold"]), where, "threshold", s["threshold"], "a number >= 0")
        _checks.require(s["threshold_mode"] in ("rel", "abs"), where, "threshold_mode", s["threshold_mode"],
                        "'rel' or 'abs'")
        _checks.check_int(where, "cooldown", s["cooldown"], 0)
        _checks.require(nonnegative(s["eps"]), where, "eps", s["eps"], "a number >= 0")

    def _check_state(self, state, where):
        self._check_settings(state, where)
        n = len(self.optimizer.param_groups)
        if state["default_min_lr"] is None:  # min_lr was a list: one floor per group, as the constructor checks
            _min_lrs(where, "min_lrs", state["min_lrs"], n)
        else:  # one floor for all: min_lrs follows the number of groups (_reduce_lr)
            _checks.require(nonnegative(state["default_min_lr"]), where, "default_min_lr", state["default_min_lr"],
                            "None or a number >= 0")
            _check_rates(where, "min_lrs", state["min_lrs"])
        for key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            _checks.check_int(where, key, state[key], 0)
        best = state["best"]
        _checks.require(_checks.is_real(best) and not math.isnan(best), where, "best", best, "a number (not NaN)")
        _check_rates(where, "_last_lr", state["_last_lr"])

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
