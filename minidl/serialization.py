"""Saving and loading checkpoints without pickle.

``save(state, path)`` writes a nested structure, e.g.
``{'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3}``,
as ONE ``.npz`` file (a zip of ``.npy`` arrays): every array under a
generated name (``a0``, ``a1``, ...) plus an entry ``__meta__.json``, a uint8
array holding a JSON document that describes the structure and refers to the
arrays by name. ``load(path)`` rebuilds it.

Why not pickle: unpickling runs whatever code the file names, so opening a
downloaded checkpoint would be as dangerous as running a downloaded script.
Here ``load`` reads only arrays (``np.load(..., allow_pickle=False)``) and
JSON; the file stays readable with NumPy alone.

What round-trips: dict (any key of type str, int, float, bool, None, or a
tuple of those; key types are kept, so ``{0: ...}`` comes back with int keys),
list, tuple, str, int, float (NaN and infinities too), bool, None, NumPy
arrays and scalars (dtype kept), and Tensors (as host NumPy-backed Tensors,
``requires_grad`` kept). CuPy arrays come back as NumPy arrays. Subclasses of
dict, list and tuple (OrderedDict, named tuples) come back as the plain type.
Anything else, and arrays of Python objects, is refused with a TypeError that
names where in the structure it sits.

The JSON describes each value as itself (strings, finite numbers, booleans,
null) or as an object with a ``"type"``: ``dict`` (``"items"``: [key, value]
pairs), ``list``, ``tuple`` (``"items"``), ``float`` (``"value"``: ``"nan"``,
``"inf"``, ``"-inf"``), ``ndarray``, ``scalar`` (a NumPy scalar, stored as a
0-d array) or ``tensor`` (``"array"``: the entry name). The document is
``{"format": "minidl", "version": 1, "tree": ...}``.

A save is atomic: the file is written under a temporary name in the same
directory, flushed to disk, then renamed over ``path``, so a crash mid-write
leaves any old file intact.
"""
import contextlib
import json
import math
import os
import secrets
import zipfile
import zlib

import numpy as np

from minidl import backend
from minidl.tensor import Tensor

FORMAT_VERSION = 1
_FORMAT = "minidl"
_META = "__meta__.json"


class SerializationError(ValueError):
    """A file that cannot be loaded as a minidl checkpoint: missing,
    truncated, corrupted, written by a newer minidl, or not a minidl
    checkpoint at all."""


class MissingFileError(SerializationError, FileNotFoundError):
    """``load`` of a path where there is no file: a SerializationError like
    every other unloadable checkpoint, and a FileNotFoundError as Python code
    expects, so either ``except`` clause catches it."""


# --- save -------------------------------------------------------------------------

def save(state, path):
    """Write ``state`` (see the module docstring for what it may hold) to
    ``path``, exactly that path (no ``.npz`` is appended), atomically."""
    path = _fspath(path)
    arrays = {}
    tree = _encode(state, "state", arrays, set())
    meta = json.dumps({"format": _FORMAT, "version": FORMAT_VERSION, "tree": tree}, allow_nan=False)
    arrays[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    _write_atomically(path, arrays)


def _fspath(path):
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    return os.fsdecode(path)


def _encode(obj, where, arrays, open_containers):
    """The JSON node for ``obj``; its arrays go into ``arrays``. ``where`` is
    its place in the structure, for error messages."""
    if isinstance(obj, Tensor):
        return {"type": "tensor", "array": _add_array(arrays, backend.as_numpy(obj.data), where),
                "requires_grad": obj.requires_grad}
    if isinstance(obj, np.generic):  # before float/str: np.float64 and np.str_ subclass them
        return {"type": "scalar", "array": _add_array(arrays, np.asarray(obj), where)}
    if backend.is_array(obj):
        return {"type": "ndarray", "array": _add_array(arrays, backend.as_numpy(obj), where)}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"type": "float", "value": repr(obj)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in open_containers:
            raise ValueError(f"cannot save {where}: it contains itself (a reference cycle)")
        open_containers.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = [[_encode_key(k, where), _encode(v, f"{where}[{k!r}]", arrays, open_containers)]
                         for k, v in obj.items()]
                return {"type": "dict", "items": items}
            return {"type": "tuple" if isinstance(obj, tuple) else "list",
                    "items": [_encode(v, f"{where}[{i}]", arrays, open_containers) for i, v in enumerate(obj)]}
        finally:
            open_containers.discard(id(obj))
    raise TypeError(f"cannot save {where}: {type(obj).__name__} is not a supported type (dict, list, tuple, str, "
                    "int, float, bool, None, NumPy arrays and scalars, Tensors)")


def _is_plain_key(k):
    if isinstance(k, tuple):
        return all(_is_plain_key(x) for x in k)
    return k is None or (isinstance(k, (str, int, float)) and not isinstance(k, np.generic))


def _encode_key(k, where):
    if not _is_plain_key(k):
        raise TypeError(f"cannot save {where}: it has a key of type {type(k).__name__}; keys may be str, int, "
                        "float, bool, None or tuples of them")
    return _encode(k, where, None, set())


def _add_array(arrays, a, where):
    if a.dtype.hasobject:
        raise TypeError(f"cannot save {where}: an array of dtype {a.dtype} holds Python objects, which only "
                        "pickle can store; convert it to a numeric or string dtype")
    key = f"a{len(arrays)}"
    arrays[key] = a
    return key


def _write_atomically(path, arrays):
    with atomic_open(path) as f:  # a file object, so numpy cannot append '.npz' to the name
        np.savez(f, allow_pickle=False, **arrays)


@contextlib.contextmanager
def atomic_open(path):
    """A binary file object whose contents appear at ``path`` only if the block
    completes: they are written under a temporary name in the same directory,
    flushed to disk, then renamed over ``path``. A crash or an exception
    mid-write leaves any old file at ``path`` intact and no temporary file
    behind. Every file minidl writes goes through here."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {directory!r} does not exist")
    # A hidden name next to the target (a rename is atomic only within one filesystem),
    # cut short so that it stays under the file-name length limit.
    tmp = os.path.join(directory, f".{os.path.basename(path)[:100]}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never clobber another file; mode 0o666 lets the umask decide, as open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable; not possible everywhere (Windows), so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- load -------------------------------------------------------------------------

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def load(path):
    """Read a file written by `save`. Raises `SerializationError`
    naming the file and the problem if it is missing (then also a
    FileNotFoundError) or not a readable minidl checkpoint."""
    path = _fspath(path)
    _check_header(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _read(npz, path)
    except SerializationError:
        raise
    except _READ_ERRORS as e:
        raise SerializationError(f"cannot load {path!r}: reading it failed, so it is truncated, corrupted or not "
                                 f"written by minidl ({type(e).__name__}: {e})") from e


def _check_header(path):
    """Name the common wrong files before NumPy gives a vaguer message."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise MissingFileError(f"cannot load {path!r}: there is no such file") from None
    except OSError as e:
        raise SerializationError(f"cannot load {path!r}: {e.strerror or e}") from e
    if not head:
        raise SerializationError(f"cannot load {path!r}: the file is empty")
    if head.startswith(b"PK"):
        return
    if head.startswith(b"\x80"):
        what = "a pickle file (e.g. from pickle.dump or an old torch.save); minidl never unpickles"
    elif head.startswith(b"\x93NUMPY"):
        what = "a single .npy array (read it with numpy.load), not a minidl checkpoint"
    else:
        what = "not a minidl checkpoint (not an .npz archive)"
    raise SerializationError(f"cannot load {path!r}: it is {what}")


def _read(npz, path):
    if _META not in npz.files:
        raise SerializationError(f"cannot load {path!r}: it is an .npz archive without minidl's '{_META}' entry, "
                                 "so not a minidl checkpoint; read plain .npz files with numpy.load")
    raw = npz[_META]
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"'{_META}' is a {raw.dtype} array of shape {raw.shape}, not uint8 bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        raise SerializationError(f"cannot load {path!r}: its metadata is unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "tree" not in meta:
        raise SerializationError(f"cannot load {path!r}: its '{_META}' entry does not describe a minidl checkpoint")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SerializationError(f"cannot load {path!r}: its metadata has no valid format version ({version!r})")
    if version > FORMAT_VERSION:
        raise SerializationError(f"cannot load {path!r}: it is in minidl format version {version}, and this minidl "
                                 f"reads versions up to {FORMAT_VERSION}; upgrade minidl to load it")
    try:
        return _decode(meta["tree"], npz, path)
    except (KeyError, TypeError, IndexError) as e:
        raise SerializationError(f"cannot load {path!r}: its metadata is malformed ({type(e).__name__}: {e})") from e


def _decode(node, npz, path):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict):
        raise TypeError(f"unexpected {type(node).__name__} node")
    kind = node["type"]
    if kind == "dict":
        return {_decode(k, npz, path): _decode(v, npz, path) for k, v in node["items"]}
    if kind == "list":
        return [_decode(v, npz, path) for v in node["items"]]
    if kind == "tuple":
        return tuple(_decode(v, npz, path) for v in node["items"])
    if kind == "float":
        if node["value"] not in ("nan", "inf", "-inf"):
            raise TypeError(f"bad float value {node['value']!r}")
        return float(node["value"])
    if kind in ("ndarray", "scalar", "tensor"):
        key = node["array"]
        if key == _META or key not in npz.files:
            raise SerializationError(f"cannot load {path!r}: its metadata refers to an array {key!r} "
                                     "that the file does not contain")
        a = npz[key]
        if kind == "ndarray":
            return a
        if kind == "scalar":
            return a[()]
        t = Tensor(a)
        t.requires_grad = bool(node["requires_grad"])
        return t
    raise TypeError(f"unknown node type {kind!r}")
