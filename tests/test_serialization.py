"""mdl.save / mdl.load: exact round trips of nested state, the file is a plain npz, atomic writes, and clear
errors for bad files and unsupported values."""
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from minidl import serialization
from minidl.serialization import SerializationError, load, save


def assert_same(a, b, where="state"):
    """Equal values of exactly the same types (and dtypes), all the way down."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, mdl.Tensor):
        assert a.requires_grad == b.requires_grad, where
        a, b = a.data, b.data
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert type(k) is type(next(x for x in b if x == k)), f"{where}: key {k!r}"
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def nested_state():
    rng = np.random.default_rng(0)
    return {
        "model": OrderedDict([
            ("fc.weight", mdl.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)),
            ("fc.bias", mdl.tensor(np.zeros(3))),
            ("bn.num_batches_tracked", np.array(7, dtype=np.int64)),  # a 0-d array stays an array
        ]),
        "optimizer": {"state": {0: {"step": 3, "exp_avg": rng.standard_normal((3, 4))},
                                2: {"momentum_buffer": np.array([1.5], dtype=np.float32)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1, 2]}]},
        "epoch": 3,
        "best": float("inf"),
        "worst": float("-inf"),
        "loss": float("nan"),
        "name": "resnet18 ✓",
        "flags": [True, False, None],
        "mask": np.array([[True, False], [False, True]]),
        "ints": np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2],  # not contiguous
        "fortran": np.asfortranarray(rng.standard_normal((2, 3))),
        "empty": (np.zeros((0, 5), dtype=np.float16), [], {}, ()),
        "scalars": (np.float32(0.25), np.int64(-3), np.bool_(True), np.float64(np.nan)),
        "labels": np.array(["cat", "dog"]),
        "big": 2 ** 70,
        "keys": {0: "int", "0": "str", 1.5: "float", None: "none", (1, "a"): "tuple", True: "bool"},
        "nested_tuple": ((1, 2.0), [3, (4,)]),
    }


def test_round_trip_of_nested_state(tmp_path):
    state = nested_state()
    save(state, tmp_path / "ckpt.npz")
    loaded = load(tmp_path / "ckpt.npz")
    expected = dict(state, model=dict(state["model"]))  # an OrderedDict comes back as a plain dict
    assert_same(expected, loaded)
    assert list(loaded["optimizer"]["state"]) == [0, 2]
    weight = loaded["model"]["fc.weight"]
    assert isinstance(weight, mdl.Tensor) and weight.device == "cpu" and weight.data.flags.writeable


@pytest.mark.parametrize("value", [None, 3, 2.5, "text", [1, 2], (1,), np.ones(3), mdl.tensor(np.ones(2))])
def test_round_trip_of_bare_values(tmp_path, value):
    save(value, tmp_path / "v")
    assert_same(value, load(tmp_path / "v"))


def test_the_file_is_a_plain_npz(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(4.0), "t": mdl.tensor(np.ones(2, dtype=np.float32)), "epoch": 2}, path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__meta__.json"].tobytes().decode("utf-8"))
        assert meta["format"] == "minidl" and meta["version"] == serialization.FORMAT_VERSION
        arrays = {k: npz[k] for k in npz.files if k != "__meta__.json"}
    assert sorted(a.tolist() for a in arrays.values()) == [[0.0, 1.0, 2.0, 3.0], [1.0, 1.0]]


def test_path_is_used_exactly_and_overwritten(tmp_path):
    save({"a": 1}, str(tmp_path / "model.ckpt"))
    assert os.listdir(tmp_path) == ["model.ckpt"]  # no '.npz' appended
    save({"a": 2}, tmp_path / "model.ckpt")
    assert load(str(tmp_path / "model.ckpt")) == {"a": 2}
    assert os.listdir(tmp_path) == ["model.ckpt"]


# --- atomicity ----------------------------------------------------------------------------

def _crash(*args, **kwargs):
    raise OSError("simulated crash")


@pytest.mark.parametrize("target", ["fsync", "replace", "savez-midway", "interrupt"])
def test_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch, target):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1, "w": np.ones(3)}, path)
    before = path.read_bytes()
    if target == "fsync":
        monkeypatch.setattr(os, "fsync", _crash)
    elif target == "replace":
        monkeypatch.setattr(os, "replace", _crash)
    elif target == "savez-midway":
        def half_written(f, *args, **kwargs):
            f.write(b"PK\x03\x04 partial")
            raise OSError("disk full")
        monkeypatch.setattr(np, "savez", half_written)
    else:
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save({"epoch": 2, "w": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind
    assert load(path)["epoch"] == 1


# A writer that blocks inside the atomic_open block, its temporary half written, until it is killed.
_BLOCKED_WRITER = """
import sys
from minidl.serialization import atomic_open
with atomic_open(sys.argv[1]) as f:
    f.write(b"x" * 100000)
    f.flush()
    print("written", flush=True)
    sys.stdin.read()
"""


def _killed_mid_save(path):
    """Start a save to ``path`` in a subprocess, SIGKILL it mid-write, and return its pid."""
    root = Path(mdl.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_WRITER, str(path)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    watchdog = threading.Timer(60, proc.kill)  # a writer that never gets going must not hang the test run
    watchdog.start()
    try:
        assert proc.stdout.readline() == b"written\n"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()  # reaped: a zombie's pid still counts as alive
        watchdog.cancel()
        proc.stdin.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="needs kill -9, and pids are only probed on POSIX")
def test_a_save_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1}, path)
    pid = _killed_mid_save(path)
    [stale] = [name for name in os.listdir(tmp_path) if name != "ckpt.npz"]
    assert stale.startswith(".ckpt.npz.minidl-") and f"-{pid}-" in stale and stale.endswith(".tmp")
    assert (tmp_path / stale).stat().st_size == 100000 and load(path) == {"epoch": 1}
    host = stale[len(".ckpt.npz.minidl-"):].rsplit("-", 2)[0]
    token = "0123456789ab"
    kept = [
        f".ckpt.npz.minidl-{host}-{os.getpid()}-{token}.tmp",  # a live writer's (this process)
        f".ckpt.npz.minidl-otherhost-{pid}-{token}.tmp",  # another host's, on a shared filesystem
        f".ckpt.npz.minidl-{host}_ns1-{pid}-{token}.tmp",  # another pid namespace's
        f"ckpt.npz.minidl-{host}-{pid}-{token}.tmp",  # and look-alikes: not hidden,
        f".ckpt.npz.minidl-{host}-{pid}-{token}.tmp.bak",
        f".ckpt.npz.minidl-{host}-{pid}-0123456789AB.tmp",
        f".ckpt.npz.minidl-{host}-{pid}-{token}0.tmp",
        f".ckpt.npz.minidl-{host}-0{pid}-{token}.tmp",
        f".ckpt.npz.minidl-{host}-{pid}.tmp",
        ".ckpt.npz.0123456789ab.tmp",  # the old form, which says nothing of its writer
        "notes.tmp",
    ]
    for name in kept:
        (tmp_path / name).write_bytes(b"user data")
    (tmp_path / f".dir.minidl-{host}-{pid}-{token}.tmp").mkdir()  # of the exact form, but not a file
    (tmp_path / f".other.bin.minidl-{host}-{pid}-fedcba987654.tmp").write_bytes(b"")  # the dead writer's too
    save({"epoch": 2}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["ckpt.npz", f".dir.minidl-{host}-{pid}-{token}.tmp"])
    assert all((tmp_path / name).read_bytes() == b"user data" for name in kept)
    assert load(path) == {"epoch": 2}


def test_unsupported_value_writes_nothing(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1}, path)
    with pytest.raises(TypeError):
        save({"epoch": 2, "bad": object()}, path)
    assert load(path) == {"epoch": 1} and os.listdir(tmp_path) == ["ckpt.npz"]
    with pytest.raises(FileNotFoundError, match=r"the directory .* does not exist"):
        save({}, tmp_path / "missing" / "ckpt.npz")


# --- refusing to save ----------------------------------------------------------------------

@pytest.mark.parametrize("state, pattern", [
    ({"model": {"fc.weight": np.array([1, "a"], dtype=object)}},
     r"cannot save state\['model'\]\['fc.weight'\]: an array of dtype object holds Python objects"),
    ({"layers": [1, {2, 3}]}, r"cannot save state\['layers'\]\[1\]: set is not a supported type"),
    ({"f": lambda: 0}, r"cannot save state\['f'\]: function is not a supported type"),
    ({"b": b"bytes"}, r"cannot save state\['b'\]: bytes is not a supported type"),
    ({"d": {np.int64(0): 1}}, r"cannot save state\['d'\]: it has a key of type int64"),
    ({"d": {mdl.tensor(np.ones(1)): 1}}, r"cannot save state\['d'\]: it has a key of type Tensor"),
])
def test_unsupported_values_are_refused_with_their_path(tmp_path, state, pattern):
    with pytest.raises(TypeError, match=pattern):
        save(state, tmp_path / "x")
    assert not os.listdir(tmp_path)


def test_reference_cycle_is_refused(tmp_path):
    state = {"a": []}
    state["a"].append(state)
    with pytest.raises(ValueError, match=r"cannot save state\['a'\]\[0\]: it contains itself"):
        save(state, tmp_path / "x")
    shared = [1, 2]
    save({"a": shared, "b": shared}, tmp_path / "y")  # shared (not cyclic) references are fine
    assert load(tmp_path / "y") == {"a": [1, 2], "b": [1, 2]}


def test_bad_path_type():
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike, got int"):
        save({}, 3)


# --- refusing to load -----------------------------------------------------------------------

def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _meta(doc):
    return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)


def test_missing_file_or_a_directory(tmp_path):
    with pytest.raises(SerializationError, match=r"cannot load '.*nope\.npz': there is no such file") as info:
        load(tmp_path / "nope.npz")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(SerializationError, match=r"cannot load '.*'"):  # the OS's reason follows
        load(tmp_path)


def test_truncated_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    save(nested_state(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        path.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match=r"cannot load '.*ckpt\.npz': .*truncated, corrupted"):
            load(path)


def test_corrupted_array_data_fails_its_checksum(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"w": np.zeros(1000)}, path)
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF  # inside the zeros of the array entry
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match=r"ckpt\.npz.*(CRC|corrupted)"):
        load(path)


@pytest.mark.parametrize("content, pattern", [
    (b"", r"the file is empty"),
    (np.random.default_rng(0).bytes(4096), r"not a minidl checkpoint \(not an \.npz archive\)"),
    (pickle.dumps({"w": [1.0, 2.0]}), r"a pickle file .*minidl never unpickles"),
    (b"PK\x03\x04" + bytes(200), r"truncated, corrupted"),
], ids=["empty", "random", "pickle", "broken-zip"])
def test_files_that_are_not_checkpoints(tmp_path, content, pattern):
    path = tmp_path / "weird.bin"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=r"cannot load '.*weird\.bin': .*" + pattern):
        load(path)


def test_npy_and_plain_npz_files(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(SerializationError, match=r"a\.npy.*a single \.npy array"):
        load(tmp_path / "a.npy")
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(SerializationError, match=r"plain\.npz.*without minidl's '__meta__\.json' entry"):
        load(tmp_path / "plain.npz")


def test_npz_holding_pickled_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    _npz(path, **{"__meta__.json": _meta({"format": "minidl", "version": 1,
                                           "tree": {"type": "ndarray", "array": "a0"}}),
                  "a0": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(SerializationError, match=r"obj\.npz.*allow_pickle"):
        load(path)


@pytest.mark.parametrize("meta, pattern", [
    (np.frombuffer(b"{not json", dtype=np.uint8), r"its metadata is unreadable"),
    (np.frombuffer(b"\xff\xfe", dtype=np.uint8), r"its metadata is unreadable"),
    (np.ones(3, dtype=np.float64), r"its metadata is unreadable .*float64"),
    (_meta({"format": "other", "version": 1, "tree": None}),
     r"its '__meta__\.json' entry does not describe a minidl checkpoint"),
    (_meta({"format": "minidl", "version": "1", "tree": None}), r"no valid format version \('1'\)"),
    (_meta({"format": "minidl", "version": 99, "tree": None}),
     r"minidl format version 99, and this minidl reads versions up to 1; upgrade minidl"),
    (_meta({"format": "minidl", "version": 1, "tree": {"type": "ndarray", "array": "a7"}}),
     r"refers to an array 'a7' that the file does not contain"),
    (_meta({"format": "minidl", "version": 1, "tree": {"type": "mystery"}}), r"metadata is malformed"),
    (_meta({"format": "minidl", "version": 1, "tree": {"type": "dict"}}), r"metadata is malformed"),
    (_meta({"format": "minidl", "version": 1, "tree": [1, 2]}), r"metadata is malformed"),
])
def test_bad_metadata(tmp_path, meta, pattern):
    path = tmp_path / "bad.npz"
    _npz(path, **{"__meta__.json": meta})
    with pytest.raises(SerializationError, match=r"cannot load '.*bad\.npz': .*" + pattern):
        load(path)


def _nested(depth, leaf):
    """``depth`` lists around ``leaf``."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_nesting_is_limited_on_saving(tmp_path):
    deepest = {"a": _nested(serialization.MAX_DEPTH - 3, {(1,): 3})}  # the key's tuple counts too: 100 levels
    save(deepest, tmp_path / "ok")
    assert load(tmp_path / "ok") == deepest
    with pytest.raises(ValueError, match=r"cannot save state\['a'\](\[0\]){99}: it is nested more than 100 "
                                         r"containers deep"):
        save({"a": _nested(serialization.MAX_DEPTH, 1)}, tmp_path / "deep")
    assert not os.path.exists(tmp_path / "deep")


@pytest.mark.parametrize("depth, pattern", [
    (serialization.MAX_DEPTH + 1, r"its metadata is malformed at state(\[0\]){100}: it is nested more than 100 "
                                  r"containers deep, which save\(\) never writes"),
    (400, r"its metadata is malformed at .*: it is nested more than 100 containers deep"),
    (100_000, r"its metadata is unreadable \(nested too deeply to decode; save\(\) nests at most 100 containers"),
])
def test_deeply_nested_metadata_is_a_serialization_error(tmp_path, depth, pattern):
    tree = '{"type": "list", "items": [' * depth + "1" + "]}" * depth
    meta = '{"format": "minidl", "version": 1, "tree": ' + tree + "}"
    _npz(tmp_path / "deep.npz", **{"__meta__.json": np.frombuffer(meta.encode(), dtype=np.uint8)})
    with pytest.raises(SerializationError, match=r"cannot load '.*deep\.npz': " + pattern):
        load(tmp_path / "deep.npz")


def test_serialization_error_is_a_value_error():
    assert issubclass(SerializationError, ValueError)
