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

    # What a parameter's state may hold, for load_state_dict: arrays shaped like the parameter, step counts
    # (ints >= 0), and which of them a non-empty state must have. A subclass that declares none of them may
    # keep anything; only its state's arrays are checked (real numbers, the parameter's shape).
    _state_arrays = ()
    _state_counts = ()
    _state_required = ()

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
                        p._bump_version()  # a graph recorded before the step holds the old values
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
        """Restore a ``state_dict()`` of an optimizer of this class, whose groups
        hold the same number of parameters as this one's, in the same order.

        The saved settings (``lr`` included) replace the current ones; each group
        must give every setting, held to the rules the constructor applies, and
        may keep extra keys (a scheduler's ``initial_lr``), as ``add_param_group``
        does. Each parameter's state may hold only what this class keeps (see
        its docstring): arrays of real numbers shaped like the parameter, copied
        onto its device in its dtype, and step counts, ints >= 0.
        Nothing changes unless the whole dict is valid; the ValueError names the
        class, the entry and the value."""
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = (f"a dict with the keys {', '.join(map(repr, state_dict)) or '(none)'}"
                   if isinstance(state_dict, dict) else type(state_dict).__name__)
            raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups' and nothing else (from "
                             f"Optimizer.state_dict()), got {got}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)):
            raise ValueError(f"{where}: 'param_groups' must be a list of dicts, got {type(saved_groups).__name__}")
        if not isinstance(saved_state, dict):
            raise ValueError(f"{where}: 'state' must be a dict from parameter index to dict, got "
                             f"{type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index, groups = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            groups.append(self._load_group(where, i, group, saved, by_index))

        state = {}
        for index, saved in saved_state.items():
            if not _checks.is_int(index) or index not in by_index:
                raise ValueError(f"{where}: the state dict has state for parameter {index!r}, "
                                 "which none of its parameter groups lists")
            p = by_index[index]
            state[p] = self._load_state(where, index, p, saved)
        self.param_groups = groups
        self.state = state

    def _load_group(self, where, i, group, saved, by_index):
        """The group ``saved`` (the ``i``-th of a state dict) restored onto ``group``'s parameters, once its
        settings pass the constructor's checks; its indices go into ``by_index``."""
        if not isinstance(saved, dict):
            raise ValueError(f"{where}: parameter group {i} must be a dict, got {type(saved).__name__}")
        missing = [key for key in ("params", *self.defaults) if key not in saved]
        if missing:
            raise ValueError(f"{where}: parameter group {i} lacks {', '.join(map(repr, missing))}, so it is not a "
                             f"{type(self).__name__} state dict ({type(self).__name__}'s settings are "
                             f"{', '.join(self.defaults)})")
        indices = saved["params"]
        if not isinstance(indices, (list, tuple)) or not all(_checks.is_int(k) for k in indices):
            raise ValueError(f"{where}: 'params' of parameter group {i} must be a list of parameter indices "
                             f"(ints), got {indices!r}")
        if len(indices) != len(group["params"]):
            raise ValueError(f"{where}: parameter group {i} has {len(indices)} "
                             f"parameters in the state dict and {len(group['params'])} in this optimizer")
        for index, p in zip(indices, group["params"]):
            if index in by_index:
                raise ValueError(f"{where}: parameter index {index} appears twice in 'param_groups'")
            by_index[index] = p
        new_group = {**saved, "params": group["params"]}
        try:
            self._complete(new_group)
        except ValueError as e:
            raise ValueError(f"{where}: parameter group {i}: {e}") from None
        return new_group

    def _load_state(self, where, index, p, saved):
        """The state of parameter ``index`` (``p`` here), checked against what this class keeps."""
        if not isinstance(saved, dict):
            raise ValueError(f"{where}: the state of parameter {index} must be a dict, got {type(saved).__name__}")
        known = self._state_arrays + self._state_counts
        if known:
            unknown = [key for key in saved if key not in known]
            if unknown:
                raise ValueError(f"{where}: the state of parameter {index} has {', '.join(map(repr, unknown))}, "
                                 f"which {type(self).__name__} does not keep (it keeps {', '.join(known)}), so "
                                 "it is not from this optimizer")
            lacking = [key for key in self._state_required if key not in saved]
            if saved and lacking:
                raise ValueError(f"{where}: the state of parameter {index} lacks {', '.join(map(repr, lacking))}")
        restored = {}
        for key, value in saved.items():
            if key in self._state_counts:
                _checks.require(_checks.is_int(value) and value >= 0, where, f"state '{key}' of parameter {index}",
                                value, "an int >= 0")
                restored[key] = int(value)
            else:
                restored[key] = self._restore(where, value, p, index, key)
        return restored

    def _restore(self, where, value, p, index, key):
        if isinstance(value, Tensor):
            value = value.data
        if not backend.is_array(value):
            if key in self._state_arrays:
                raise ValueError(f"{where}: state '{key}' of parameter {index} must be an array shaped like the "
                                 f"parameter, got {type(value).__name__}")
            return value
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{where}: state '{key}' of parameter {index} must be an array of real numbers, got "
                             f"dtype {value.dtype}")
        if value.shape != p.data.shape:
            raise ValueError(f"{where}: state '{key}' of parameter {index} has "
                             f"shape {tuple(value.shape)}, but the parameter has shape {p.shape}")
        dtype = p.dtype if key in self._state_arrays or value.dtype.kind == "f" else value.dtype
        return backend.to_device(value, p.device).astype(dtype)  # astype copies: the dict keeps its arrays
