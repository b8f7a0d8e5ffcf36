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
``{"format": "minidl", "version": 1, "tree": ...}``. Containers nest at
most ``MAX_DEPTH`` (100) levels deep, on saving and on loading.

A save is atomic: the file is written under a temporary name in the same
directory, flushed to disk, then renamed over ``path``, so a crash mid-write
leaves any old file intact (see `atomic_open`, which also removes what killed
writers left behind).

``load`` reads only what ``save`` writes: any other metadata (an unknown node
type or field, a duplicate key, an array referred to twice, deeper nesting),
and any array entry whose header does not match the data it holds, is refused
with a SerializationError that says where, before anything large is allocated.
"""
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import zipfile
import zlib

import numpy as np

from minidl import backend
from minidl.tensor import Tensor

FORMAT_VERSION = 1
MAX_DEPTH = 100
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
    tree = _encode(state, "state", arrays, set(), 0)
    meta = json.dumps({"format": _FORMAT, "version": FORMAT_VERSION, "tree": tree}, allow_nan=False)
    arrays[_META] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    _write_atomically(path, arrays)


def _fspath(path):
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    return os.fsdecode(path)


def _encode(obj, where, arrays, open_containers, depth):
    """The JSON node for ``obj``; its arrays go into ``arrays``. ``where`` is
    its place in the structure, for error messages; ``depth`` the number of
    containers around it."""
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
        if depth >= MAX_DEPTH:
            raise ValueError(f"cannot save {where}: it is nested more than {MAX_DEPTH} containers deep")
        open_containers.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = [[_encode_key(k, where, depth + 1),
                          _encode(v, f"{where}[{k!r}]", arrays, open_containers, depth + 1)]
                         for k, v in obj.items()]
                return {"type": "dict", "items": items}
            return {"type": "tuple" if isinstance(obj, tuple) else "list",
                    "items": [_encode(v, f"{where}[{i}]", arrays, open_containers, depth + 1)
                              for i, v in enumerate(obj)]}
        finally:
            open_containers.discard(id(obj))
    raise TypeError(f"cannot save {where}: {type(obj).__name__} is not a supported type (dict, list, tuple, str, "
                    "int, float, bool, None, NumPy arrays and scalars, Tensors)")


def _is_plain_key(k):
    if isinstance(k, tuple):
        return all(_is_plain_key(x) for x in k)
    return k is None or (isinstance(k, (str, int, float)) and not isinstance(k, np.generic))


def _encode_key(k, where, depth):
    if not _is_plain_key(k):
        raise TypeError(f"cannot save {where}: it has a key of type {type(k).__name__}; keys may be str, int, "
                        "float, bool, None or tuples of them")
    return _encode(k, where, None, set(), depth)


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
    behind. Every file minidl writes goes through here.

    A writer killed outright (``kill -9``, the machine's OOM killer) cannot
    clean up, so the temporary's name says whose it is:
    ``.NAME.minidl-HOST-PID-RANDOM.tmp``, where HOST is this machine's name
    with every character but letters, digits and ``-`` written as ``_xx`` (on
    Linux followed by ``_nsN``, its pid namespace, in which alone PID means a
    process), and PID the writer's process id. Each call first removes, from
    the directory it writes to, the temporaries of exactly that form whose HOST
    is this one and whose PID is no live process: their writers are dead. A
    temporary from another host (a shared filesystem), or of a live pid, is
    left alone, and so is every file not of exactly that form. Nothing is
    removed where pids cannot be probed safely (Windows)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {directory!r} does not exist")
    _remove_stale_temporaries(directory)
    # A hidden name next to the target (a rename is atomic only within one filesystem),
    # its copy of the name cut short so that it stays under the file-name length limit.
    tmp = os.path.join(directory, f".{_shortened(os.path.basename(path))}.minidl-{_writer_host()}-{os.getpid()}-"
                                  f"{secrets.token_hex(6)}.tmp")
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


# What _writer_host gives, and nothing else: an escaped name has no '.', so the host field ends at the last
# '.minidl-', whatever the target's name holds.
_TEMPORARY = re.compile(r"\.(?s:.*)\.minidl-"
                        r"(?P<host>(?:(?:[A-Za-z0-9-]|_[0-9a-f]{2})+|_h[0-9a-f]{16})(?:_ns[0-9]+)?)"
                        r"-(?P<pid>[1-9][0-9]*)-[0-9a-f]{12}\.tmp")


def _shortened(name, limit=100):
    """``name`` cut to at most ``limit`` bytes on disk (a limit in characters would let a non-ASCII name
    overflow the 255-byte file-name limit)."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


def _writer_host():
    """This host, as temporaries name it: letters, digits and '-' kept, every other byte as ``_xx``, so that
    two hosts never share a name (a long or empty one as a hash: ``_h`` is no escape); then, on Linux, the pid
    namespace as ``_nsN``, as containers that share a host name but not a pid namespace (a Kubernetes pod's)
    see different processes under one pid."""
    raw = socket.gethostname().encode("utf-8", "surrogateescape")
    name = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or b == ord("-")) else f"_{b:02x}" for b in raw)
    if not name or len(name) > 48:
        name = "_h" + hashlib.sha256(raw).hexdigest()[:16]
    with contextlib.suppress(OSError):
        namespace = re.fullmatch(r"pid:\[([0-9]+)\]", os.readlink("/proc/self/ns/pid"))
        if namespace:
            name += "_ns" + namespace[1]
    return name


def _pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except OverflowError:  # more than any pid: no process has it
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def _remove_stale_temporaries(directory):
    """Remove the temporaries that writers on this host left in ``directory`` when they were killed; best
    effort, since a save must not fail over another writer's leftovers."""
    if os.name != "posix":  # on Windows os.kill(pid, 0) would terminate the process
        return
    try:
        with os.scandir(directory) as entries:
            candidates = [e for e in entries if e.name.endswith(".tmp") and ".minidl-" in e.name]
    except OSError:
        return
    host = None
    for entry in candidates:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None:
            continue
        host = host or _writer_host()
        if match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.remove(entry.path)


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
    decoder = _Decoder(npz, path)
    raw = decoder.array(_META)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"'{_META}' is a {raw.dtype} array of shape {raw.shape}, not uint8 bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"), object_pairs_hook=_json_object,
                          parse_constant=_json_constant)
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        raise SerializationError(f"cannot load {path!r}: its metadata is unreadable ({e})") from None
    except RecursionError:  # JSON nested thousands deep: the decoder recurses
        raise SerializationError(f"cannot load {path!r}: its metadata is unreadable (nested too deeply to "
                                 f"decode; save() nests at most {MAX_DEPTH} containers)") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "tree" not in meta:
        raise SerializationError(f"cannot load {path!r}: its '{_META}' entry does not describe a minidl checkpoint")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SerializationError(f"cannot load {path!r}: its metadata has no valid format version ({version!r})")
    if version > FORMAT_VERSION:
        raise SerializationError(f"cannot load {path!r}: it is in minidl format version {version}, and this minidl "
                                 f"reads versions up to {FORMAT_VERSION}; upgrade minidl to load it")
    return decoder.value(meta["tree"], "state", 0)


def _json_object(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a JSON object repeats a field: {sorted(keys)}")
    return dict(pairs)


def _json_constant(name):
    raise ValueError(f"{name} is not JSON (save() writes non-finite floats as float nodes)")


# The fields of each kind of node, as save() writes them.
_FIELDS = {"dict": {"type", "items"}, "list": {"type", "items"}, "tuple": {"type", "items"},
           "float": {"type", "value"}, "ndarray": {"type", "array"}, "scalar": {"type", "array"},
           "tensor": {"type", "array", "requires_grad"}}


class _Decoder:
    """Rebuilds the tree of one file, accepting only what save() writes; every refusal says where in the
    structure (``state['model']['fc.weight']``) the bad node sits."""

    def __init__(self, npz, path):
        self.npz, self.path = npz, path
        self.members, self.files, self.size = set(npz.zip.namelist()), set(npz.files), os.path.getsize(path)
        self.used = set()  # array names already read: each is referred to once, or one entry could be read N times

    def fail(self, where, problem):
        raise SerializationError(f"cannot load {self.path!r}: its metadata is malformed at {where}: {problem}")

    def array(self, name):
        """``npz[name]``, once its entry has been checked: NumPy allocates what an .npy header declares before
        it reads the data, so a few hostile bytes could otherwise ask for terabytes; and it returns an entry
        that is not an .npy as bytes."""
        path = self.path
        member = name if name in self.members else name + ".npy"  # as NpzFile looks it up
        info = self.npz.zip.getinfo(member)
        # What the archive claims must fit in the bytes really there: a stored entry holds its compressed size,
        # a deflated one at most 1032 times it.
        if info.compress_type == zipfile.ZIP_STORED:
            most = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            most = 1032 * info.compress_size + 1024
        else:
            raise SerializationError(f"cannot load {path!r}: its entry {member!r} uses zip compression method "
                                     f"{info.compress_type}; minidl reads stored and deflated entries only")
        if info.flag_bits & 0x1:  # zipfile would raise a RuntimeError, asking for a password
            raise SerializationError(f"cannot load {path!r}: its entry {member!r} is encrypted; minidl never "
                                     "writes encrypted entries")
        if info.header_offset + info.compress_size > self.size or info.file_size > most:
            raise SerializationError(f"cannot load {path!r}: its entry {member!r} claims {info.file_size} bytes, "
                                     f"more than the {info.compress_size} bytes stored for it can hold, so the "
                                     "file is corrupted")
        with self.npz.zip.open(member) as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
            except ValueError as e:
                raise SerializationError(f"cannot load {path!r}: its entry {member!r} is not a readable .npy "
                                         f"array ({e})") from None
            data_bytes = info.file_size - f.tell()
        if dtype.hasobject:
            raise SerializationError(f"cannot load {path!r}: its array {name!r} holds Python objects (dtype "
                                     f"{dtype}), which only pickle can read, and minidl never unpickles "
                                     "(allow_pickle=False)")
        declared = math.prod(shape) * dtype.itemsize
        if declared != data_bytes or any(n < 0 for n in shape):
            raise SerializationError(f"cannot load {path!r}: its array {name!r} declares shape {shape} of {dtype} "
                                     f"({declared} bytes), but its entry holds {data_bytes} bytes of data")
        return self.npz[name]

    def node(self, node, where, depth):
        """The type of ``node``, once it is checked to be an object node as save() writes it."""
        if not isinstance(node, dict):
            self.fail(where, f"expected a value or a node object, got a JSON {_json_kind(node)}")
        kind = node.get("type")
        if not isinstance(kind, str) or kind not in _FIELDS:
            self.fail(where, f"unknown node type {kind!r}")
        if set(node) != _FIELDS[kind]:
            self.fail(where, f"a {kind!r} node has the fields {sorted(node)}, expected {sorted(_FIELDS[kind])}")
        if kind in ("dict", "list", "tuple"):
            if depth >= MAX_DEPTH:
                self.fail(where, f"it is nested more than {MAX_DEPTH} containers deep, which save() never writes")
            if not isinstance(node["items"], list):
                self.fail(where, f"the items of a {kind!r} node are a JSON {_json_kind(node['items'])}, not a list")
        return kind

    def value(self, node, where, depth):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        kind = self.node(node, where, depth)
        if kind == "dict":
            out = {}
            for i, item in enumerate(node["items"]):
                if not (isinstance(item, list) and len(item) == 2):
                    self.fail(where, f"dict item {i} is a JSON {_json_kind(item)}, not a [key, value] pair")
                key = self.key(item[0], where, depth + 1)
                if key in out:
                    self.fail(where, f"the key {key!r} appears twice")
                out[key] = self.value(item[1], f"{where}[{key!r}]", depth + 1)
            return out
        if kind in ("list", "tuple"):
            items = [self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node["items"])]
            return tuple(items) if kind == "tuple" else items
        if kind == "float":
            return self.float(node, where)
        name = node["array"]
        if not isinstance(name, str) or name == _META or name not in self.files:
            raise SerializationError(f"cannot load {self.path!r}: its metadata refers to an array {name!r} "
                                     "that the file does not contain")
        if name in self.used:
            self.fail(where, f"the array {name!r} is referred to twice, which save() never writes")
        self.used.add(name)
        a = self.array(name)
        if kind == "ndarray":
            return a
        if kind == "scalar":
            if a.ndim != 0:
                self.fail(where, f"a 'scalar' node refers to the array {name!r} of shape {a.shape}, not a 0-d one")
            return a[()]
        requires_grad = node["requires_grad"]
        if not isinstance(requires_grad, bool):
            self.fail(where, f"a 'tensor' node's requires_grad is {requires_grad!r}, not true or false")
        try:
            return Tensor(a, requires_grad=requires_grad)
        except (TypeError, ValueError) as e:  # a dtype no Tensor holds, or gradients on integers
            self.fail(where, f"a 'tensor' node refers to the array {name!r}, but no Tensor can be made of it ({e})")

    def key(self, node, where, depth):
        """A dict key: what ``_is_plain_key`` lets save() write."""
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        kind = self.node(node, where, depth)
        if kind == "float":
            return self.float(node, where)
        if kind == "tuple":
            return tuple(self.key(k, where, depth + 1) for k in node["items"])
        self.fail(where, f"a dict key is a {kind!r} node; keys are str, int, float, bool, null or tuples of them")

    def float(self, node, where):
        if node["value"] not in ("nan", "inf", "-inf"):
            self.fail(where, f"bad float value {node['value']!r}")
        return float(node["value"])


def _json_kind(value):
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
