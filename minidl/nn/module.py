"""Module: the base class of every layer and model.

A Module owns three ordered tables, filled by plain attribute assignment:

* ``_parameters``: `Parameter` objects (``self.weight = Parameter(...)``),
* ``_buffers``: tensors that are state but not learned (``register_buffer``),
  such as batch norm's running statistics,
* ``_modules``: sub-modules (``self.fc = Linear(...)``).

Everything else (walking the tree, naming, saving, moving, switching
train/eval) is derived from those tables, with PyTorch's names and semantics:
a ``state_dict()`` of a minidl model has exactly the keys PyTorch gives the
same module tree, so weights move between the two through NumPy.
"""
import itertools
from collections import OrderedDict, namedtuple

import numpy as np

from minidl import backend
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        self._hooks.pop(self._key, None)


def _check_name(module, kind, name):
    if not isinstance(name, str):
        raise TypeError(f"{type(module).__name__}: {kind} name must be a string; got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{type(module).__name__}: {kind} name {name!r} must be non-empty and contain no '.'")


def _shape_str(shape):
    return "(" + ", ".join(str(n) for n in shape) + ")"


class _Uncastable(ValueError):
    """Why an array cannot be loaded into a tensor of some dtype, as 'what was expected, got what'."""


def _cast(array, dtype):
    """``array`` as ``dtype``, on its own device, if the cast keeps its values: see load_state_dict."""
    if array.dtype.kind not in "biuf":
        raise _Uncastable(f"real numbers or booleans (to load as {dtype}), got an array of dtype {array.dtype}")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf cast to an integer: found just below
        cast = array.astype(dtype, copy=False)
    if array.size == 0 or np.can_cast(array.dtype, dtype, "safe"):
        return cast
    if dtype.kind == "f":
        xp = backend.get_array_module(array)
        lost = xp.isfinite(array) & ~xp.isfinite(cast)
        expected = f"values within the range of {dtype}"
    else:
        lost = cast != array
        expected = f"values that {dtype} holds exactly"
    if lost.any():
        example = array[lost].ravel()[0].item()
        raise _Uncastable(f"{expected}, got {example!r} (in an array of {array.dtype})")
    return cast


class Module:
    """Base class for layers and models: subclass it, assign parameters and
    sub-modules in ``__init__`` (after ``super().__init__()``), define ``forward``."""

    def __init__(self):
        # object.__setattr__ because our __setattr__ needs these tables to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # --- calling ------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) in the subclass")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces the args."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        return RemovableHandle(self._forward_pre_hooks, key)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    # --- registration -------------------------------------------------------------
    def _require_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {what} before Module.__init__() is called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )

    def _check_new_name(self, kind, name, table):
        _check_name(self, kind, name)
        if name not in table and (name in self.__dict__ or hasattr(type(self), name)
                                  or any(name in t for t in (self._parameters, self._buffers, self._modules))):
            raise KeyError(f"{type(self).__name__}: attribute {name!r} already exists; cannot register it as a {kind}")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or None for an optional one such as a missing bias)."""
        self._require_init("parameters")
        self._check_new_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"{type(self).__name__}: cannot register a {type(param).__name__} as parameter {name!r} "
                "(Parameter or None expected; wrap it as Parameter(x))"
            )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register a tensor that is state but not learned. Persistent buffers are saved in ``state_dict``."""
        self._require_init("buffers")
        self._check_new_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"{type(self).__name__}: cannot register a {type(tensor).__name__} as buffer {name!r} "
                "(Tensor or None expected)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register ``module`` (or None) as the child ``name``."""
        self._require_init("modules")
        self._check_new_name("module", name, self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module (child {name!r})")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init("parameters")
            self._forget(name, keep=self._parameters)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to parameter {name!r} "
                    "(Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._require_init("modules")
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif d.get("_modules") is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to child module {name!r} "
                    "(Module or None expected)"
                )
            self._modules[name] = None
        elif d.get("_buffers") is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to buffer {name!r} "
                    "(Tensor or None expected)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep):
        """Drop ``name`` from the plain attributes and every table but ``keep``, where it is about
        to be (re-)registered; staying in ``keep`` keeps its position in the order."""
        self.__dict__.pop(name, None)
        for table in (self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        # only reached when ordinary lookup fails, i.e. for registered names
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # --- walking the tree ---------------------------------------------------------
    def named_modules(self, memo=None, prefix=""):
        """(name, module) for this module and every descendant, depth first, each module once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, table, prefix, recurse):
        seen = set()
        owners = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for owner_prefix, module in owners:
            for name, value in getattr(module, table).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))  # a shared tensor is yielded once, under its first name
                yield (f"{owner_prefix}.{name}" if owner_prefix else name), value

    def named_parameters(self, prefix="", recurse=True):
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call ``fn(m)`` on every descendant, then on this module (as PyTorch; used for custom init)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- saving and loading -------------------------------------------------------
    def state_dict(self, prefix="", keep_vars=False):
        """An OrderedDict from names (``features.0.weight``) to tensors: this module's
        parameters, then its persistent buffers, then each child's, recursively.

        The tensors are detached but share memory with the module (as in PyTorch);
        ``keep_vars=True`` gives the Parameter objects themselves.
        """
        out = OrderedDict()
        self._save_to(out, prefix, keep_vars)
        return out

    def _save_to(self, out, prefix, keep_vars):
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child._save_to(out, f"{prefix}{name}.", keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (name -> Tensor or array) into this module's
        parameters and buffers, in place: each keeps its dtype, device and identity.

        Every entry is checked before anything is written: its shape, and that it is
        a Tensor or array of real numbers or booleans that the target's dtype holds.
        A floating-point target takes any such values (rounded to its precision, but
        none may overflow to infinity); an integer or bool target only values it
        holds exactly (no 1.5, NaN or out-of-range number). With ``strict=True``
        missing and unexpected keys raise too. One RuntimeError lists every problem,
        each with its key, what was expected and what was got, and leaves the module
        as it was. Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a mapping of names to tensors; got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        values, mismatched, bad = {}, [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if not backend.is_array(array):
                bad.append(f"{key!r}: expected a Tensor or an array, got {type(value).__name__}")
            elif tuple(array.shape) != target.shape:
                mismatched.append((key, target.shape, tuple(array.shape)))
            else:
                # Converted now, so that writing cannot fail half-way: a copy to the GPU can run out of memory.
                try:
                    values[key] = backend.to_device(_cast(array, target.dtype), target.device)
                except _Uncastable as e:
                    bad.append(f"{key!r}: expected {e}")
                except (backend.DeviceError, MemoryError) as e:
                    bad.append(f"{key!r}: expected an array that can be copied to {target.device}, got "
                               f"{type(e).__name__}: {e}")
        if mismatched or bad or (strict and (missing or unexpected)):
            lines = [f"Error(s) in loading state_dict for {type(self).__name__}:"]
            if strict and missing:
                lines.append(f"  missing keys ({len(missing)}): " + ", ".join(map(repr, missing)))
            if strict and unexpected:
                lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(map(repr, unexpected)))
            if mismatched:
                lines.append(f"  shape mismatches ({len(mismatched)}):")
                lines += [f"    {k!r}: expected {_shape_str(want)}, got {_shape_str(got)}"
                          for k, want, got in mismatched]
            if bad:
                lines.append(f"  bad values ({len(bad)}):")
                lines += [f"    {line}" for line in bad]
            raise RuntimeError("\n".join(lines))
        for key, array in values.items():
            own[key].data[...] = array
        return IncompatibleKeys(missing, unexpected)

    # --- modes ----------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and every descendant."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be True or False; got {mode!r}")
        self.training = mode
        for child in self.children():  # recursing through train() lets subclasses override it
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode: dropout off, batch norm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient (to None, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._wrap(backend.get_array_module(p.grad.data).zeros_like(p.grad.data))

    # --- moving and casting -------------------------------------------------------
    def _apply(self, convert):
        """Replace the array of every parameter, buffer and gradient by ``convert(array)``.

        Only ``.data`` changes, so Parameter objects keep their identity and an
        optimizer built on ``model.parameters()`` keeps working after ``to()``.
        """
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None:
                    continue
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad = Tensor._wrap(convert(t.grad.data))
        return self

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast the floating-point ones to ``dtype``,
        in place. ``to(np.float64)`` is accepted as ``to(dtype=np.float64)``."""
        if device is not None and not isinstance(device, str) and dtype is None:
            device, dtype = None, device
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}.to: dtype must be a floating-point type; got {dtype}")
        if device is not None:
            backend.parse_device(device)

        def convert(a):
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype, copy=False)
            return a if device is None else backend.to_device(a, device)

        return self._apply(convert)

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=None):
        return self.to("cuda" if index is None else f"cuda:{index}")

    # --- printing -------------------------------------------------------------------
    def extra_repr(self):
        """The settings shown inside this module's repr, e.g. ``in_features=4, out_features=2``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        name = type(self).__name__
        if not self._modules and len(lines) <= 1:
            return f"{name}({''.join(lines)})"
        return name + "(\n  " + "\n  ".join(lines) + "\n)"
