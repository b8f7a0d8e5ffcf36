"""Learning-rate schedulers, with PyTorch's semantics.

A scheduler changes ``group['lr']`` in its optimizer's parameter groups. Call
``scheduler.step()`` once per epoch, after that epoch's ``optimizer.step()``
calls (``ReduceLROnPlateau.step(metric)`` takes the epoch's validation
metric)::

    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(90):
        train_one_epoch(model, opt)
        sched.step()

`OneCycleLR` is the exception: it is stepped once per batch, after each
``optimizer.step()``.

The schedulers but ReduceLROnPlateau record each group's starting rate as
``group['initial_lr']``
(kept if already there, e.g. from a loaded optimizer; `OneCycleLR` sets it
from ``max_lr``) and count steps in ``last_epoch``, which is 0 right after
construction. `StepLR`, `MultiStepLR`, `ExponentialLR` and
`CosineAnnealingLR` update the current rate from the previous one (the
"chainable" form PyTorch uses), `LambdaLR` and `OneCycleLR` compute it from
the starting rates, each with PyTorch's arithmetic, so the sequences match
PyTorch's to the last bit.
"""
import math
import numbers
import types
from collections import Counter

from minidl import _checks
from minidl.optim.optimizer import Optimizer, nonnegative
from minidl.tensor import Tensor


def _positive_number(v):
    return _checks.is_real(v) and v > 0


def _copy(value):
    """``value`` with its lists, tuples and dicts copied all the way down, so that a state dict and
    the scheduler it came from or went into share nothing that either could change."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _per_group(where, name, value, n, ok, rule):
    """A setting given as one value for all ``n`` parameter groups or as a list of one per group, as
    a list; each value must pass ``ok``, which ``rule`` states (``'a number >= 0'``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{where}: {name} has {len(value)} values, but the optimizer has {n} parameter "
                             "groups")
        values = list(value)
    else:
        values = [value] * n
    for v in values:
        _checks.require(ok(v), where, name, value, f"{rule} or a list of them, one per parameter group")
    return values


def _check_rates(where, name, value):
    """A list of learning rates (or rate floors), one per parameter group."""
    _checks.require(isinstance(value, (list, tuple)) and all(nonnegative(v) for v in value), where, name, value,
                    "a list of numbers >= 0, one per parameter group")


class LRScheduler:
    """Base class of the schedulers that follow a schedule: subclasses define
    ``get_lr()``, the rates for step ``last_epoch`` (from the current ones,
    for the chainable schedulers)."""

    def __init__(self, optimizer):
        self.optimizer = self._attach(optimizer)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()  # epoch 0: the chainable schedulers leave the rates as they are

    def _attach(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got {type(optimizer).__name__}")
        return optimizer

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__}.get_lr")

    def step(self):
        """Advance one epoch and set each group's lr for it."""
        self.last_epoch += 1
        try:
            lrs = self.get_lr()
        except BaseException:
            self.last_epoch -= 1  # a step that fails leaves the schedule where it was
            raise
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer (whose own state_dict holds the rates):
        plain numbers, strings, lists and dicts, so ``mdl.save`` can write it."""
        return {k: _copy(v) for k, v in vars(self).items() if k != "optimizer"}

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
        self._restore_state(state_dict)

    def _restore_state(self, state):
        """Take on a state that ``_check_state`` passed: by default its entries are the attributes."""
        vars(self).update({k: list(_copy(v)) if isinstance(v, tuple) else _copy(v) for k, v in state.items()})

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


class MultiStepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` at each epoch listed in ``milestones``:
    :math:`\eta_e = \eta_0\,\gamma^{n(e)}`, where :math:`n(e)` counts the
    milestones :math:`\le e`.

    ``MultiStepLR(opt, milestones=[30, 80])`` with lr 0.05 gives 0.05 up to
    epoch 29, 0.005 from epoch 30 and 0.0005 from epoch 80. The order of the
    list does not matter, and an epoch listed twice counts twice (the rate is
    multiplied by :math:`\gamma^2` there): as in PyTorch, ``milestones`` is
    kept as a ``collections.Counter`` from epoch to count.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        name = type(self).__name__
        try:
            epochs = None if isinstance(milestones, (str, bytes, dict)) else list(milestones)
        except TypeError:
            epochs = None
        _checks.require(epochs is not None and all(_checks.is_int(e) and e >= 0 for e in epochs), name,
                        "milestones", milestones, "a list of epochs (ints >= 0)")
        counts = Counter(int(e) for e in epochs)
        self._check_settings({"milestones": counts, "gamma": gamma}, name)
        self.milestones = counts
        self.gamma = gamma
        super().__init__(optimizer)

    def _check_settings(self, settings, where):
        milestones = settings["milestones"]
        _checks.require(isinstance(milestones, dict) and all(
            _checks.is_int(e) and e >= 0 and _checks.is_int(n) and n >= 1 for e, n in milestones.items()),
            where, "milestones", milestones, "a dict from epoch (int >= 0) to how often it is a milestone (int >= 1)")
        _checks.require(_positive_number(settings["gamma"]), where, "gamma", settings["gamma"], "a number > 0")

    def _restore_state(self, state):
        super()._restore_state(state)
        self.milestones = Counter(self.milestones)  # mdl.load gives back a plain dict

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in self.optimizer.param_groups]


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


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the rate from its initial value :math:`\eta_0` to ``eta_min``
    along half a cosine over ``T_max`` epochs (SGDR, Loshchilov & Hutter, 2017,
    without the restarts):

    .. math::

        \eta_e = \eta_{\min} + \tfrac12\,(\eta_0 - \eta_{\min})
                 \left(1 + \cos\frac{\pi e}{T_{\max}}\right)

    The rate is computed from the previous one, as PyTorch does,

    .. math::

        \eta_e = \eta_{\min} + (\eta_{e-1} - \eta_{\min})\,
                 \frac{1 + \cos(\pi e / T_{\max})}{1 + \cos(\pi (e - 1) / T_{\max})}

    (at :math:`e = T_{\max} + 1, 3T_{\max} + 1, \dots`, where that quotient
    would be 0/0, :math:`\eta_e = \eta_{e-1} + \tfrac12 (\eta_0 - \eta_{\min})
    (1 - \cos(\pi / T_{\max}))`), so it composes with changes made to the rate
    by other code. Past ``T_max`` the cosine goes on: the rate climbs back to
    :math:`\eta_0` at :math:`2T_{\max}`, and so on with period
    :math:`2T_{\max}`, as in PyTorch; stop stepping at ``T_max`` to stay at
    ``eta_min``.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self._check_settings({"T_max": T_max, "eta_min": eta_min}, type(self).__name__)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def _check_settings(self, settings, where):
        _checks.check_int(where, "T_max", settings["T_max"], 1)
        _checks.require(nonnegative(settings["eta_min"]), where, "eta_min", settings["eta_min"], "a number >= 0")

    def get_lr(self):
        groups = self.optimizer.param_groups
        epoch, period = self.last_epoch, self.T_max
        if epoch == 0:
            return [group["lr"] for group in groups]
        if (epoch - 1 - period) % (2 * period) == 0:  # the rate was eta_min: step up from it
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for base_lr, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * epoch / period)) / (1 + math.cos(math.pi * (epoch - 1) / period))
                * (group["lr"] - self.eta_min) + self.eta_min for group in groups]


class LambdaLR(LRScheduler):
    r"""Set the rate to the initial rate times a function of the epoch:
    :math:`\eta_e = \eta_0\,\lambda(e)`.

    ``lr_lambda`` is a function (or a callable object) from the epoch, an int
    from 0, to a factor, or a list of them, one per parameter group. Linear
    warm-up over 5 epochs is ``LambdaLR(opt, lambda e: min(1.0, (e + 1) / 5))``.
    The rate is set at construction already, to :math:`\eta_0\,\lambda(0)`.

    ``state_dict()`` holds no functions, as in PyTorch: an entry per function
    in ``'lr_lambdas'`` that is None for a plain function or lambda, and for a
    callable object a copy of its attributes (its ``__dict__``, so they must be
    things ``mdl.save`` can write). ``load_state_dict`` puts those attributes
    back into this scheduler's own functions, so make the scheduler with the
    same functions before loading.
    """

    def __init__(self, optimizer, lr_lambda):
        name = type(self).__name__
        n = len(self._attach(optimizer).param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"{name}: lr_lambda has {len(lr_lambda)} functions, but the optimizer has {n} "
                                 "parameter groups")
            lambdas = list(lr_lambda)
        else:
            lambdas = [lr_lambda] * n
        for fn in lambdas:
            _checks.require(callable(fn), name, "lr_lambda", lr_lambda,
                            "a function of the epoch or a list of them, one per parameter group")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def get_lr(self):
        factors = [fn(self.last_epoch) for fn in self.lr_lambdas]
        for factor in factors:  # a negative rate would climb the loss, and no state dict could hold it
            _checks.require(nonnegative(factor), type(self).__name__, f"lr_lambda({self.last_epoch})", factor,
                            "a number >= 0 (a factor of the initial learning rate)")
        return [base_lr * factor for base_lr, factor in zip(self.base_lrs, factors)]

    def state_dict(self):
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__")
                               else _copy(vars(fn)) for fn in self.lr_lambdas]
        return state

    def _check_state(self, state, where):
        super()._check_state(state, where)
        saved = state["lr_lambdas"]
        n = len(self.lr_lambdas)
        _checks.require(isinstance(saved, (list, tuple)) and len(saved) == n and all(
            attributes is None or (isinstance(attributes, dict) and hasattr(fn, "__dict__"))
            for fn, attributes in zip(self.lr_lambdas, saved)), where, "lr_lambdas", saved,
            f"a list of {n} entries, each None or a dict of the attributes of a callable object")

    def _restore_state(self, state):
        state = dict(state)
        saved = state.pop("lr_lambdas")
        super()._restore_state(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                vars(fn).update(_copy(attributes))


def _total_steps(where, total_steps, epochs, steps_per_epoch):
    """OneCycleLR's length in steps: ``total_steps``, else ``epochs * steps_per_epoch``."""
    if total_steps is not None:
        return _checks.check_int(where, "total_steps", total_steps, 1)
    if epochs is None or steps_per_epoch is None:
        raise ValueError(f"{where}: give total_steps, or epochs and steps_per_epoch; got total_steps=None, "
                         f"epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}")
    return _checks.check_int(where, "epochs", epochs, 1) * _checks.check_int(where, "steps_per_epoch",
                                                                              steps_per_epoch, 1)


def _beta1(v):
    return _checks.is_real(v) and 0 <= v < 1


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2017), stepped once per batch: the
    rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of the ``total_steps`` steps, then falls to
    ``max_lr / div_factor / final_div_factor``.

    Call ``step()`` after every ``optimizer.step()``; ``total_steps`` is the
    number of batches, given directly or as ``epochs * steps_per_epoch``. Each
    phase goes from a start value :math:`a` to an end value :math:`b` as the
    fraction :math:`p` of it done goes from 0 to 1, along a cosine
    (``anneal_strategy='cos'``) or a line (``'linear'``):

    .. math::

        b + \tfrac12 (a - b)\,(1 + \cos \pi p) \qquad\text{or}\qquad (b - a)\,p + a

    The first phase ends at step :math:`\text{pct\_start}\cdot\text{total\_steps} - 1`,
    the last at step ``total_steps - 1``. With ``three_phase=True`` (the paper's
    schedule) the rate comes back down to ``max_lr / div_factor`` in a second
    phase as long as the first, and a third anneals it to the minimum; without
    (fastai's default, as in PyTorch) the second phase anneals from ``max_lr``
    to the minimum. The step after the last batch, step ``total_steps``, goes
    on past the end of the last phase (with ``'linear'`` to a rate below 0),
    as in PyTorch; a step beyond that is a ValueError.

    With ``cycle_momentum`` (the default) the momentum moves the other way,
    from ``max_momentum`` down to ``base_momentum`` while the rate rises, and
    back up: ``group['momentum']`` for SGD and RMSprop, ``group['betas'][0]``
    for Adam and AdamW. (As in PyTorch this turns momentum on for SGD made
    without it; pass ``cycle_momentum=False`` to leave it alone.)

    It writes ``initial_lr``, ``max_lr`` and ``min_lr`` (and ``max_momentum``
    and ``base_momentum``) into each parameter group, overwriting them, and
    computes each step's values from them, so they travel with the
    optimizer's state dict. Unlike the chainable schedulers its constructor
    sets the rates of step 0; to resume, make the scheduler, then load the
    optimizer's state dict, then the scheduler's.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        name = type(self).__name__
        self.optimizer = self._attach(optimizer)
        groups = optimizer.param_groups
        settings = dict(total_steps=_total_steps(name, total_steps, epochs, steps_per_epoch), pct_start=pct_start,
                        anneal_strategy=anneal_strategy, three_phase=three_phase, cycle_momentum=cycle_momentum)
        self._check_settings(settings, name)
        max_lrs = _per_group(name, "max_lr", max_lr, len(groups), nonnegative, "a number >= 0")
        _checks.require(_positive_number(div_factor), name, "div_factor", div_factor, "a number > 0")
        _checks.require(_positive_number(final_div_factor), name, "final_div_factor", final_div_factor,
                        "a number > 0")
        if cycle_momentum:
            if "betas" in optimizer.defaults:
                ok, rule = _beta1, "a number in [0, 1) (Adam's beta1)"
            elif "momentum" in optimizer.defaults:
                ok, rule = nonnegative, "a number >= 0"
            else:
                raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with momentum or betas, and "
                                 f"{type(optimizer).__name__} has neither; pass cycle_momentum=False")
            max_momenta = _per_group(name, "max_momentum", max_momentum, len(groups), ok, rule)
            base_momenta = _per_group(name, "base_momentum", base_momentum, len(groups), ok, rule)
        vars(self).update(settings)
        for group, peak in zip(groups, max_lrs):
            group["initial_lr"] = peak / div_factor
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            for group, top, bottom in zip(groups, max_momenta, base_momenta):
                self._set_momentum(group, top)
                group["max_momentum"] = top
                group["base_momentum"] = bottom
        super().__init__(optimizer)

    def _check_settings(self, settings, where):
        total_steps, pct_start, three_phase = settings["total_steps"], settings["pct_start"], settings["three_phase"]
        _checks.check_int(where, "total_steps", total_steps, 1)
        _checks.require(_checks.is_real(pct_start) and 0 <= pct_start <= 1, where, "pct_start", pct_start,
                        "a number in [0, 1]")
        _checks.require(settings["anneal_strategy"] in ("cos", "linear"), where, "anneal_strategy",
                        settings["anneal_strategy"], "'cos' or 'linear'")
        _checks.check_bool(where, "three_phase", three_phase)
        _checks.check_bool(where, "cycle_momentum", settings["cycle_momentum"])
        start = 0.0
        for i, (end, *_) in enumerate(self._phases(total_steps, pct_start, three_phase)):
            if end == start:  # PyTorch divides by zero here, at the first step of the phase
                raise ValueError(f"{where}: pct_start={pct_start!r} with total_steps={total_steps}"
                                 f"{' and three_phase=True' if three_phase else ''} leaves phase {i + 1} of the "
                                 f"schedule with no steps (it starts and ends at step {end!r}); choose another "
                                 "pct_start")
            start = end

    def _check_state(self, state, where):
        self._check_settings(state, where)
        _checks.check_int(where, "last_epoch", state["last_epoch"], 0)
        _checks.require(state["last_epoch"] <= state["total_steps"], where, "last_epoch", state["last_epoch"],
                        f"at most total_steps={state['total_steps']}")
        _check_rates(where, "base_lrs", state["base_lrs"])
        # Not >= 0: after the last batch 'linear' goes on along its line, below 0, as in PyTorch.
        last = state["_last_lr"]
        _checks.require(isinstance(last, (list, tuple)) and all(_checks.is_real(v) for v in last), where, "_last_lr",
                        last, "a list of numbers, one per parameter group")

    @staticmethod
    def _phases(total_steps, pct_start, three_phase):
        """Each phase as (its last step, then the group keys of the rate and the momentum at its start and its
        end); the steps with PyTorch's arithmetic, so that the rates match to the bit."""
        rise = (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum")
        if three_phase:
            return [rise,
                    (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                    (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        return [rise, (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]

    @property
    def use_beta1(self):
        """Whether the momentum cycled is Adam's ``betas[0]`` rather than ``momentum``."""
        return "betas" in self.optimizer.defaults

    def _where(self):
        """The phase that step ``last_epoch`` is in, and the fraction of it done there."""
        phases = self._phases(self.total_steps, self.pct_start, self.three_phase)
        start = 0.0
        for phase in phases[:-1]:
            if self.last_epoch <= phase[0]:
                break
            start = phase[0]
        else:
            phase = phases[-1]
        return phase, (self.last_epoch - start) / (phase[0] - start)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def get_lr(self):
        if self.last_epoch > self.total_steps:
            raise ValueError(f"{type(self).__name__}: tried to step {self.last_epoch} times, but total_steps is "
                             f"{self.total_steps}; the schedule is over (make total_steps the number of batches "
                             "trained, epochs * steps_per_epoch)")
        (_, lr_from, lr_to, *_), pct = self._where()
        return [self._anneal(group[lr_from], group[lr_to], pct) for group in self.optimizer.param_groups]

    def step(self):
        """Advance one batch: set each group's lr (and momentum, with ``cycle_momentum``) for it."""
        super().step()
        if self.cycle_momentum:
            (_, _, _, momentum_from, momentum_to), pct = self._where()
            for group in self.optimizer.param_groups:
                self._set_momentum(group, self._anneal(group[momentum_from], group[momentum_to], pct))


def _min_lrs(where, name, min_lr, n):
    """ReduceLROnPlateau's ``min_lr``, a number or a list of ``n``, as (default_min_lr, min_lrs)."""
    floors = _per_group(where, name, min_lr, n, nonnegative, "a number >= 0")
    return (None if isinstance(min_lr, (list, tuple)) else min_lr), floors


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
