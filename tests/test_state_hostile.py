"""Hostile and foreign state: checkpoint files whose metadata or entries save() would never write, and state
dicts of one optimizer or scheduler loaded into another. Each gets an error that names what is wrong, never a
raw KeyError or TypeError from deep inside, and leaves the object it was loaded into as it was."""
import io
import itertools
import json
import struct
import zipfile

import numpy as np
import pytest

import minidl as mdl
from minidl import nn, optim
from minidl.optim.lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR
from minidl.serialization import SerializationError, load, save


def npy(array=None, header=None, data=None):
    """The bytes of an .npy file: ``array``'s, or a hand-written ``header`` followed by ``data``."""
    f = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(f, array, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data)
    return f.getvalue()


def checkpoint(path, tree, entries=(), meta=None, compression=zipfile.ZIP_STORED):
    """Write an archive by hand: ``meta`` (raw JSON text) or a document around ``tree``, plus ``entries``
    (name, bytes), each an .npy unless its name says otherwise."""
    if meta is None:
        meta = json.dumps({"format": "minidl", "version": 1, "tree": tree})
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("__meta__.json.npy", npy(np.frombuffer(meta.encode(), dtype=np.uint8)))
        for name, content in entries:
            z.writestr(name, content)
    return path


def a0(array):
    return [("a0.npy", npy(array))]


def tensor_node(**fields):
    return {"type": "tensor", "array": "a0", **fields}


@pytest.mark.parametrize("tree, entries, pattern", [
    ({"type": "dict", "items": [[1]]}, (), r"malformed at state: dict item 0 is a JSON array, not a \[key, value\]"),
    ({"type": "dict", "items": [5]}, (), r"dict item 0 is a JSON number, not a \[key, value\] pair"),
    ({"type": "dict", "items": {"a": 1}}, (), r"the items of a 'dict' node are a JSON object, not a list"),
    ({"type": "dict", "items": [["a", 1], ["a", 2]]}, (), r"malformed at state: the key 'a' appears twice"),
    ({"type": "dict", "items": [[1, 1], [True, 2]]}, (), r"the key True appears twice"),
    ({"type": "dict", "items": [[{"type": "list", "items": []}, 1]]}, (),
     r"a dict key is a 'list' node; keys are str, int, float, bool, null or tuples of them"),
    ({"type": "dict", "items": [[{"type": "ndarray", "array": "a0"}, 1]]}, a0(np.ones(2)),
     r"a dict key is a 'ndarray' node"),
    ({"type": "dict", "items": [[[1, 2], 3]]}, (), r"expected a value or a node object, got a JSON array"),
    ({"type": "dict", "items": [["w", {"type": "tensor", "array": "a0"}]]}, a0(np.ones(2)),
     r"malformed at state\['w'\]: a 'tensor' node has the fields \['array', 'type'\], expected "
     r"\['array', 'requires_grad', 'type'\]"),
    (tensor_node(requires_grad="yes"), a0(np.ones(2)), r"a 'tensor' node's requires_grad is 'yes', not true or false"),
    (tensor_node(requires_grad=True), a0(np.arange(2)),
     r"a 'tensor' node refers to the array 'a0', but no Tensor can be made of it \(only floating-point"),
    ({"type": "list", "items": [], "extra": 1}, (), r"a 'list' node has the fields \['extra', 'items', 'type'\]"),
    ({"type": ["list"], "items": []}, (), r"unknown node type \['list'\]"),
    ({"items": []}, (), r"unknown node type None"),
    ({"type": "float", "value": "1e999"}, (), r"bad float value '1e999'"),
    ({"type": "float", "value": ["nan"]}, (), r"bad float value \['nan'\]"),
    ({"type": "ndarray", "array": ["a0"]}, a0(np.ones(2)), r"refers to an array \['a0'\] that the file does not"),
    ({"type": "ndarray", "array": "__meta__.json"}, (), r"refers to an array '__meta__.json' that the file does not"),
    ({"type": "list", "items": [{"type": "ndarray", "array": "a0"}] * 2}, a0(np.ones(2)),
     r"malformed at state\[1\]: the array 'a0' is referred to twice, which save\(\) never writes"),
    ({"type": "scalar", "array": "a0"}, a0(np.ones(2)), r"a 'scalar' node refers to the array 'a0' of shape \(2,\)"),
    ({"type": "ndarray", "array": "a0"}, a0(np.array([{"evil": 1}], dtype=object)),
     r"its array 'a0' holds Python objects \(dtype object\), which only pickle can read"),
    ({"type": "ndarray", "array": "a0"}, [("a0", b"raw bytes, not an .npy")],
     r"its entry 'a0' is not a readable .npy array"),
    ({"type": "ndarray", "array": "a0"},
     [("a0.npy", npy(header={"descr": "<f8", "fortran_order": False, "shape": (10 ** 12,)}, data=bytes(8)))],
     r"its array 'a0' declares shape \(1000000000000,\) of float64 \(8000000000000 bytes\), but its entry holds "
     r"8 bytes of data"),
    ({"type": "ndarray", "array": "a0"},
     [("a0.npy", npy(header={"descr": "<f8", "fortran_order": False, "shape": (-1, -1)}, data=bytes(8)))],
     r"its array 'a0' declares shape \(-1, -1\)"),
], ids=itertools.count())
def test_metadata_that_save_never_writes_is_refused(tmp_path, tree, entries, pattern):
    path = checkpoint(tmp_path / "bad.npz", tree, entries)
    with pytest.raises(SerializationError, match=r"cannot load '.*bad\.npz': .*" + pattern):
        load(path)


@pytest.mark.parametrize("meta, pattern", [
    ('{"format": "minidl", "version": 1, "tree": {"type": "list", "type": "dict", "items": []}}',
     r"its metadata is unreadable \(a JSON object repeats a field"),
    ('{"format": "minidl", "version": 1, "tree": NaN}', r"its metadata is unreadable \(NaN is not JSON"),
    ('{"format": "minidl", "version": 1, "tree": ' + "9" * 5000 + "}", r"its metadata is unreadable"),
])
def test_json_that_save_never_writes_is_refused(tmp_path, meta, pattern):
    with pytest.raises(SerializationError, match=pattern):
        load(checkpoint(tmp_path / "bad.npz", None, meta=meta))


def test_a_metadata_entry_that_is_not_an_npy_is_refused(tmp_path):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__meta__.json", json.dumps({"format": "minidl", "version": 1, "tree": 1}))
    with pytest.raises(SerializationError, match=r"its entry '__meta__.json' is not a readable .npy array"):
        load(path)


def patch_directory_record(path, name, offset, fmt, value):
    """Overwrite a field of entry ``name``'s record in the archive's central directory (whose name is at
    offset 46), as a corrupted or hostile file would have it."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        record = data.index(name.encode(), z.start_dir) - 46
    struct.pack_into(fmt, data, record + offset, *value)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset, fmt, value, pattern", [
    (20, "<II", (2 ** 31 - 1, 2 ** 31 - 1),  # the compressed and uncompressed sizes
     r"its entry 'a0.npy' claims 2147483647 bytes, more than the 2147483647 bytes stored for it can hold, so the "
     r"file is corrupted"),
    (8, "<H", (0x1,), r"its entry 'a0.npy' is encrypted; minidl never writes encrypted entries"),  # the flags
])
def test_entries_that_save_never_writes_are_refused(tmp_path, offset, fmt, value, pattern):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(3.0)}, path)
    patch_directory_record(path, "a0.npy", offset, fmt, value)
    with pytest.raises(SerializationError, match=pattern):
        load(path)


def test_compressed_archives(tmp_path):
    np.savez_compressed(tmp_path / "deflated.npz", **{
        "__meta__.json": np.frombuffer(json.dumps({"format": "minidl", "version": 1, "tree": {
            "type": "ndarray", "array": "a0"}}).encode(), dtype=np.uint8),
        "a0": np.zeros(100_000)})  # compresses about 1000:1, and is still read
    assert load(tmp_path / "deflated.npz").shape == (100_000,)
    path = checkpoint(tmp_path / "bz2.npz", {"type": "ndarray", "array": "a0"}, a0(np.ones(3)),
                      compression=zipfile.ZIP_BZIP2)
    with pytest.raises(SerializationError, match=r"its entry '__meta__.json.npy' uses zip compression method 12; "
                                                 r"minidl reads stored and deflated entries only"):
        load(path)


def test_long_non_ascii_names_are_saved(tmp_path):
    path = tmp_path / ("模型" * 42)  # 252 bytes: the temporary's copy of the name must be cut in bytes
    save({"epoch": 1}, path)
    assert load(path) == {"epoch": 1}


# --- a state dict of one kind loaded into another ----------------------------------------------

OPTIMIZERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adam": lambda ps: optim.Adam(ps, lr=0.1),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    "RMSprop": lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True),
}


def stepped(name):
    params = [mdl.tensor(np.array([1.0, 2.0]), requires_grad=True), mdl.tensor(np.ones(3), requires_grad=True)]
    opt = OPTIMIZERS[name](params)
    for p in params:
        p.grad = mdl.tensor(np.full(p.shape, 0.5))
    opt.step()
    return opt


def opt_snapshot(opt):
    return (repr(opt.param_groups),
            {id(p): {k: v.tobytes() if isinstance(v, np.ndarray) else v for k, v in s.items()}
             for p, s in opt.state.items()})


@pytest.mark.parametrize("source, target", list(itertools.permutations(OPTIMIZERS, 2)))
def test_optimizer_state_of_another_class_is_refused(source, target):
    theirs, ours = stepped(source), stepped(target)
    before = opt_snapshot(ours)
    with pytest.raises(ValueError, match=rf"^{target}.load_state_dict: parameter group 0 lacks .*, so it is not a "
                                         rf"{target} state dict"):
        ours.load_state_dict(theirs.state_dict())
    # The settings made to fit, the per-parameter state still gives it away.
    foreign = dict(ours.state_dict(), state=theirs.state_dict()["state"])
    with pytest.raises(ValueError, match=rf"^{target}.load_state_dict: the state of parameter 0 "
                                         rf"(has .*, which {target} does not keep|lacks)"):
        ours.load_state_dict(foreign)
    assert opt_snapshot(ours) == before


SCHEDULERS = {
    "StepLR": lambda o: StepLR(o, step_size=2),
    "ExponentialLR": lambda o: ExponentialLR(o, gamma=0.5),
    "ReduceLROnPlateau": lambda o: ReduceLROnPlateau(o),
}


@pytest.mark.parametrize("source, target", list(itertools.permutations(SCHEDULERS, 2)))
def test_scheduler_state_of_another_class_is_refused(source, target):
    theirs = SCHEDULERS[source](stepped("SGD"))
    ours = SCHEDULERS[target](stepped("SGD"))
    before = ours.state_dict()
    with pytest.raises(ValueError, match=rf"^{target}.load_state_dict: not a {target} state dict \(missing keys"):
        ours.load_state_dict(theirs.state_dict())
    assert ours.state_dict() == before


def test_module_state_dict_with_keys_of_other_types():
    net = nn.Linear(2, 2)
    sd = net.state_dict()
    sd[0] = np.zeros(1)
    sd[("weight",)] = np.zeros((2, 2))
    with pytest.raises(RuntimeError, match=r"unexpected keys \(2\): 0, \('weight',\)"):
        net.load_state_dict(sd)
    with pytest.raises(TypeError, match=r"load_state_dict: expected a mapping of names to tensors; got list"):
        net.load_state_dict([("weight", np.zeros((2, 2)))])
