"""summary(): a model's layers with output shapes, parameter counts and multiply-accumulates.

Shapes come from one forward pass on a single zero image in eval mode (no
gradient recorded, no running statistics touched); a batch of one is the
cheapest input that exercises every layer. The rows follow that pass: a
module's row comes where the pass enters it, a module called several times
(a block's shared ReLU) has a row for each call, and a module the pass did
not run keeps a row without a shape after the module defined before it.
MACs count the multiply-adds of convolutions and linear layers, the
convention behind published figures such as ResNet-50's 4.1 GMACs: a
convolution costs ``out_h * out_w * out_channels * (in_channels / groups) *
kh * kw``, a linear layer ``in_features * out_features``, for every call;
pooling, normalisation and activations are left out.
"""
from dataclasses import dataclass

import numpy as np

import minidl as mdl
from minidl import nn


@dataclass
class LayerRow:
    name: str  # attribute path, e.g. "features.0"
    type: str  # class name, e.g. "Conv2d"
    depth: int
    output_shape: tuple  # without the batch dimension; None if the layer did not run
    params: int  # parameters owned directly by this module (not its children), on each of its rows
    macs: int  # of this call
    call: int = 1  # which call of the module this row shows, from 1


def _readable(count):
    """``count`` with its digits grouped, followed where it reaches a thousand by its size in the
    unit that fits: '840', '416,520 (416.52 K)', '4,089,184,256 (4.09 G)'."""
    if count < 1000:
        return f"{count:,}"
    for power, unit in enumerate("KMGT", start=1):
        value = count / 1000 ** power
        if round(value, 2) < 1000:  # what prints as 1000.00 K reads better as 1.00 M
            break
    return f"{count:,} ({value:.2f} {unit})"


class ModelSummary:
    def __init__(self, model, input_shape, rows):
        self.model_name = type(model).__name__
        self.input_shape = input_shape
        self.rows = rows
        params = list(model.parameters())
        self.total_params = sum(p.numel() for p in params)
        self.trainable_params = sum(p.numel() for p in params if p.requires_grad)
        self.macs = sum(r.macs for r in rows)

    def __str__(self):
        rule = "=" * 96
        lines = [rule, f"{'Layer (type)':<48}{'Output Shape':<22}{'Param #':>12}{'MACs':>14}", rule]
        for r in self.rows:
            label = ("  " * r.depth + f"{r.type}: {r.name}") if r.name else r.type
            shape = "[1, " + ", ".join(map(str, r.output_shape)) + "]" if r.output_shape is not None else "--"
            # as torchinfo does: a module's parameters are counted on its first call's row
            params = ("(recursive)" if r.call > 1 else f"{r.params:,}") if r.params else "--"
            macs = f"{r.macs:,}" if r.macs else "--"
            lines.append(f"{label[:47]:<48}{shape:<22}{params:>12}{macs:>14}")
        lines += [rule,
                  f"Input shape: {tuple(self.input_shape)}",
                  f"Total params: {_readable(self.total_params)}",
                  f"Trainable params: {_readable(self.trainable_params)}",
                  f"Non-trainable params: {_readable(self.total_params - self.trainable_params)}",
                  f"Total MACs: {_readable(self.macs)}",
                  rule]
        return "\n".join(lines)

    def __repr__(self):
        return (f"ModelSummary({self.model_name}, total_params={self.total_params:,}, "
                f"macs={self.macs:,})")


def _macs(module, output_shape):
    if output_shape is None:
        return 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.weight.shape[2:]
        return int(np.prod(output_shape)) * module.weight.shape[1] * kh * kw
    if isinstance(module, nn.Linear):
        return int(np.prod(output_shape[:-1], dtype=np.int64)) * module.weight.shape[0] * module.weight.shape[1]
    return 0


def summary(model, input_shape=None):
    """Summarise ``model`` for inputs of ``input_shape`` (without the batch dimension, e.g.
    ``(3, 224, 224)``; default: the model's ``input_shape`` attribute)."""
    input_shape = input_shape or getattr(model, "input_shape", None)
    if input_shape is None:
        raise ValueError(f"summary: give the input shape for {type(model).__name__}, e.g. (3, 224, 224)")
    named = list(model.named_modules())
    calls = []  # [name, module, output shape] per call, in the order the pass entered the modules
    running = []  # indices into calls of the modules whose forward has begun and not returned
    handles = []
    for name, module in named:
        def enter(mod, args, name=name):
            running.append(len(calls))
            calls.append([name, mod, None])

        def leave(mod, args, out):
            first = out[0] if isinstance(out, tuple) else out
            calls[running.pop()][2] = tuple(first.shape[1:])

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    was_training = model.training
    model.eval()
    try:
        dtype = next(iter(model.parameters())).dtype if list(model.parameters()) else np.float32
        with mdl.no_grad():
            model(mdl.tensor(np.zeros((1,) + tuple(input_shape), dtype)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    def row(name, module, shape, call):
        own = sum(p.numel() for p in module.parameters(recurse=False))
        return LayerRow(name, type(module).__name__, name.count(".") + (1 if name else 0), shape, own,
                        _macs(module, shape), call)

    keyed, last_call, times_called = [], {}, {}
    for i, (name, module, shape) in enumerate(calls):
        times_called[id(module)] = times_called.get(id(module), 0) + 1
        last_call[id(module)] = i
        keyed.append(((i, 0), row(name, module, shape, times_called[id(module)])))
    # a module that did not run goes after the last row of the module defined before it
    key = (-1, 0)
    for name, module in named:
        if id(module) in last_call:
            key = (last_call[id(module)], 0)
        else:
            key = (key[0], key[1] + 1)
            keyed.append((key, row(name, module, None, 1)))
    keyed.sort(key=lambda key_row: key_row[0])
    return ModelSummary(model, input_shape, [r for _, r in keyed])
