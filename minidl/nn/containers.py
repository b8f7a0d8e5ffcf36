"""Containers: Sequential (a chain of layers), ModuleList (a registered list) and ModuleDict (a
registered dict)."""
import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from minidl.nn.module import Module


def _check_module(container, index, module):
    if not isinstance(module, Module):
        raise TypeError(f"{container}: element {index} is a {type(module).__name__}, not a Module")
    return module


def _position(container, index, length):
    """``index`` as a position in [0, length), counting negative indices from the end."""
    i = operator.index(index)
    if not -length <= i < length:
        raise IndexError(f"{container}: index {index} is out of range for {length} modules")
    return i % length


class Sequential(Module):
    """Calls its modules in order, each on the output of the previous one.

    ``Sequential(a, b, c)`` names them '0', '1', '2' (so ``state_dict`` has
    ``0.weight``…); ``Sequential(OrderedDict(conv=a, relu=b))`` uses the given names.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, _check_module("Sequential", repr(name), module))
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), _check_module("Sequential", i, module))

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_position("Sequential", index, len(items))][1]

    def __setitem__(self, index, module):
        names = list(self._modules)
        name = names[_position("Sequential", index, len(names))]
        self._modules[name] = _check_module("Sequential", index, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), _check_module("Sequential", len(self), module))
        return self

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters the parent registers (a plain list would hide them).

    Named '0', '1', … in ``state_dict``. It has no ``forward``: the parent decides how to call them.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[str(_position("ModuleList", index, len(self)))]

    def __setitem__(self, index, module):
        i = _position("ModuleList", index, len(self))
        self._modules[str(i)] = _check_module("ModuleList", i, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), _check_module("ModuleList", len(self), module))
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self


class ModuleDict(Module):
    """A dict of modules whose parameters the parent registers, as PyTorch's: its keys are the
    children's names, so ``state_dict`` has ``key.weight``. It keeps the order of insertion
    (assigning to an existing key keeps its place) and has no ``forward``.

    Keys follow `Module.add_module`'s rules: a non-empty string without '.', and not the name of an
    attribute of ModuleDict (``'keys'``, ``'training'``), which raises KeyError.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module {key!r}; the keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module {key!r}; the keys are {list(self._modules)}")
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        """Remove the module under ``key`` and return it."""
        module = self[key]
        del self[key]
        return module

    def update(self, modules):
        """Add or replace the modules of ``modules``: a mapping (dict, OrderedDict, ModuleDict), in
        its order, or an iterable of (key, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            for key, module in modules.items():
                self[key] = module
            return
        if not isinstance(modules, Iterable):
            raise TypeError("ModuleDict.update: expected a mapping or an iterable of (key, module) pairs; "
                            f"got {type(modules).__name__}")
        for i, pair in enumerate(modules):
            if not isinstance(pair, Iterable) or isinstance(pair, (str, Module)):
                raise TypeError(f"ModuleDict.update: element {i} must be a (key, module) pair; "
                                f"got {type(pair).__name__}")
            pair = tuple(pair)
            if len(pair) != 2:
                raise ValueError(f"ModuleDict.update: element {i} must be a (key, module) pair; "
                                 f"got {len(pair)} items")
            self[pair[0]] = pair[1]
