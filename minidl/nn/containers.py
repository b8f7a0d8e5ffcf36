"""Containers: Sequential (a chain of layers) and ModuleList (a registered list)."""
import operator
from collections import OrderedDict

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
