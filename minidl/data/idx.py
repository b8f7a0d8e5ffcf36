"""The IDX file format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the
number of dimensions -- then one big-endian uint32 per dimension, then the
values in C order. The files may also come gzip-compressed.
"""
import gzip
import math
import os
import zlib

import numpy as np

# IDX type code -> NumPy dtype (multi-byte types are big-endian)
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IDXError(ValueError):
    """An IDX file is malformed; the message names the file and the fault."""


def read_bytes(path):
    """The file's bytes, decompressed if it is gzip (detected by its magic bytes, not its name)."""
    if not isinstance(path, (str, bytes, os.PathLike)):  # an int would be opened as a file descriptor
        raise TypeError(f"read_idx: path must be a str or os.PathLike; got {path!r}")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupted gzip data ({e})") from None
    return raw


def parse_idx(raw, name="<bytes>"):
    """Parse IDX bytes into an ndarray, validating every field."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_idx: raw must be bytes; got {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) < 4:
        raise IDXError(f"{name}: {len(raw)} bytes is too short for an IDX header (needs at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{name}: bad magic number {raw[:4].hex()}: an IDX file starts with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{name}: unknown IDX type code 0x{code:02x}; expected one of "
                       f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}")
    if ndim == 0:
        raise IDXError(f"{name}: the header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{name}: truncated header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    # Python ints: a header may claim more than int64 holds (2**32 - 1 per dimension, 255 dimensions)
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"{name}: shape {shape} of {dtype.newbyteorder('=')} needs {expected} bytes, "
                       f"the file has {len(raw)} "
                       f"({'truncated' if len(raw) < expected else 'trailing data'})")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file (raw or gzip) into a native-endian ndarray."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path, array):
    """Write ``array`` as a raw IDX file (used to make test data)."""
    array = np.asarray(array)
    code = next((c for c, d in IDX_DTYPES.items() if d.kind == array.dtype.kind
                 and d.itemsize == array.dtype.itemsize), None)
    if code is None:
        raise TypeError(f"write_idx: IDX has no type for {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with open(path, "wb") as f:
        f.write(header + array.astype(IDX_DTYPES[code]).tobytes())
