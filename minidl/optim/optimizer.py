"""Optimizer: what every optimizer shares.

An optimizer holds *parameter groups*: dicts with the key ``'params'`` (a list
of tensors) and one key per setting (``'lr'``, ``'momentum'``, ...). Settings
given when the optimizer is made are the defaults; a group may override any
of them, so one model can train its layers with different learning rates::

    opt = SGD([{'params': body.parameters()},
               {'params': head.parameters(), 'lr': 0.1}], lr=0.01, momentum=0.9)

A subclass says how one parameter moves (``_update``) and which settings are
valid (``_validate``); this class does the bookkeeping: groups, per-parameter
state, ``zero_grad`` and ``state_dict``.

Per-parameter state (momentum buffers, running averages, step counts) lives in
``self.state``, a dict keyed by the parameter *object* (tensors hash by
identity). Keying by ``id(param)`` instead would be fragile: ids are reused
once an object is freed, and they mean nothing in another process.
"""
from minidl import _checks, backend
from minidl.tensor import Tensor, enable_grad, no_grad


class _Required:
    """The default of a setting that has no default (SGD's ``lr``)."""

    def __repr__(self):
        return "<required>"


required = _Required()


def nonnegative(v):
    return _checks.is_real(v) and v >= 0  # NaN fails this too


def unit_interval(v):
    return _checks.is_real(v) and 0 <= v <= 1


def is_bool(v):
    return isinstance(v, bool)


class Optimizer:
    """Base class. ``params`` is an iterable of tensors (one group) or of dicts
    (one group each, with ``'params'`` and any settings to override);
    ``defaults`` maps every setting to its default."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of tensors or of dicts, got a single tensor of shape "
                f"{params.shape}; wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: params must be an ordered iterable (list, generator), not a set: "
                            "state_dict() numbers the parameters in order")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of tensors or of dicts, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name} got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v!r}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} tensors, {settings}")
        return "\n".join(lines + [")"])

    # groups -----------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group: a dict with ``'params'`` and the settings that differ
        from the defaults (e.g. for layers unfrozen part-way through training)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, "
                            f"got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: parameter group {len(self.param_groups)} has no 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: a group's params must be ordered (list, generator), not a set")
        else:
            params = list(params)
        if not params:
            raise ValueError(f"{name}: parameter group {len(self.param_groups)} has an empty parameter list")

        taken = {id(p) for group in self.param_groups for p in group["params"]}
        here = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize tensors, but parameter {i} of group "
                                f"{len(self.param_groups)} is a {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point tensors, but parameter {i} of group "
                                f"{len(self.param_groups)} has dtype {p.dtype}")
            if not p.is_leaf:
                raise ValueError(f"{name}: parameter {i} of group {len(self.param_groups)} is not a leaf "
                                 "(it is the result of an operation); optimize the tensor it was computed from")
            if id(p) in here:
                raise ValueError(f"{name}: parameter {i} of group {len(self.param_groups)} appears twice in it")
            if id(p) in taken:
                raise ValueError(f"{name}: parameter {i} of group {len(self.param_groups)} (shape {p.shape}) "
                                 "is already in another parameter group; a parameter may be in one group only")
            here.add(id(p))

        group = {**self.defaults, **param_group, "params": params}
        self._complete(group)
        self.param_groups.append(group)

    def _complete(self, group):
        """Check that ``group`` gives every setting, each with a valid value."""
        for key in self.defaults:
            if key not in group or group[key] is required:
                raise ValueError(f"{type(self).__name__}: {key} is required: pass {key}=... "
                                 f"(or give every parameter group its own '{key}')")
        self._validate(group)

    def _check(self, group, key, ok, rule):
        """Raise a ValueError naming the optimizer, the setting and its value unless ``ok(value)``."""
        _checks.require(ok(group[key]), type(self).__name__, key, group[key], rule)

    def _validate(self, group):
        """Subclasses check their settings here."""

    # training ---------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Clear the gradients of every parameter.

        With ``set_to_none`` (the default) ``p.grad`` becomes None; otherwise
        it becomes a fresh array of zeros. Gradients are never zeroed in place,
        because a gradient array may be shared with another tensor."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor(backend.get_array_module(p.grad.data).zeros_like(p.grad.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient (those whose grad is None
        are skipped). ``closure``, if given, re-evaluates the model and returns
        the loss; it is called first, with gradient recording on, and its loss
        is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad.data, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p, grad, state, group):
        """Move ``p.data`` (in place) given its gradient array ``grad``; ``state``
        is this parameter's state dict, filled on its first step."""
        raise NotImplementedError(f"{type(self).__name__}._update")

    # saving -----------------------------------------------------------------
    def state_dict(self):
        """A snapshot of the optimizer, in PyTorch's layout::

            {'state': {index: {name: array or number}},
             'param_groups': [{setting: value, ..., 'params': [index, ...]}]}

        Parameters are numbered 0, 1, ... through the groups in order; only
        parameters that have taken a step have state. Arrays are copies, so
        later steps do not change the snapshot. ``mdl.save`` can write it."""
        state, groups, n = {}, [], 0
        for group in self.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            settings["params"] = list(range(n, n + len(group["params"])))
            groups.append(settings)
            for index, p in enumerate(group["params"], n):
                if p in self.state:
                    state[index] = {k: v.copy() if backend.is_array(v) else v for k, v in self.state[p].items()}
            n += len(group["params"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` into this optimizer, whose groups must hold
        the same number of parameters as the saved ones, in the same order.

        The saved settings (``lr`` included) replace the current ones. State
        arrays are copied onto each parameter's device, floating ones in its
        dtype. Nothing changes unless the whole dict is valid."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' "
                             f"(from Optimizer.state_dict()), got {type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index, groups = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has {len(saved['params'])} "
                                 f"parameters in the state dict and {len(group['params'])} in this optimizer")
            by_index.update(zip(saved["params"], group["params"]))
            new_group = {**self.defaults, **saved, "params": group["params"]}
            self._complete(new_group)
            groups.append(new_group)

        state = {}
        for index, saved in state_dict["state"].items():
            if index not in by_index:
                raise ValueError(f"{name}.load_state_dict: the state dict has state for parameter {index!r}, "
                                 "which none of its parameter groups lists")
            p = by_index[index]
            state[p] = {key: self._restore(value, p, index, key) for key, value in saved.items()}
        self.param_groups = groups
        self.state = state

    def _restore(self, value, p, index, key):
        if isinstance(value, Tensor):
            value = value.data
        if not backend.is_array(value):
            return value
        if value.shape != p.data.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state '{key}' of parameter {index} has "
                             f"shape {tuple(value.shape)}, but the parameter has shape {p.shape}")
        dtype = p.dtype if value.dtype.kind == "f" else value.dtype
        return backend.to_device(value, p.device).astype(dtype)  # astype copies: the dict keeps its arrays
