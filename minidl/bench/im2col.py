"""im2col / col2im speed: every implementation, in GB/s next to the machine's copy bandwidth.

Implementations timed, on the standard layers of ``minidl.bench.conv.SUITE`` (float32) plus a sweep
of the batch size (VGG 3x3) and of the channel count (a 28x28 3x3 layer):

- ``loop``: explicit Python loops over n, c, i, j, oh, ow, defined below. It exists to show
  the algorithm in its plainest form, and to be beaten: it runs at a few MB/s, so it is
  timed on as many samples of the batch as keep its columns under ``--loop-max`` elements
  (its time is linear in the batch, so the time shown is scaled to the full batch and
  marked ``*``); a layer whose single sample is over that is shown as ``-``;
- ``numpy``: the reference, ``minidl.kernels.numpy_impl``;
- ``numba``: ``minidl.kernels.numba_impl`` (``-`` when Numba is not installed). The first
  call in the process (compilation, or loading the machine code from Numba's on-disk cache)
  is reported apart from the warm medians, and which of the two it was.

- your own, with ``--impl mypkg.mymodule`` or ``--impl path/to/file.py`` (repeatable): a module
  with ``im2col`` and/or ``col2im`` of minidl's contract (see `check_contract`). Before any timing
  it must pass `check_contract` on every case of ``CONTRACT_CASES`` in float32 and float64; one
  that fails is reported with its first wrong index and is not timed.

- ``torch``: PyTorch's ``torch.nn.functional.unfold`` and ``fold``, when PyTorch is installed
  (``--no-torch`` leaves it out). They have minidl's layout (N, C*kh*kw, OH*OW), rows (c, i, j). They
  run in processes of their own, as every comparison with another framework here does, one before
  minidl's timings and one after. Each checks them against minidl's NumPy reference on every layer
  before timing them.

With ``--device cuda`` every implementation runs on CuPy arrays, each call timed between device
synchronisations: ``numpy`` is then the reference on CuPy (the same code, CuPy's array
operations), ``cuda`` minidl's CUDA kernels (``minidl.kernels.cuda_impl``), a module of yours is
given CuPy arrays, and PyTorch's column is unfold/fold on CUDA tensors; the ceiling is a copy in
GPU memory. The loop and Numba versions are CPU code and are not offered there.

For each: the median time, the effective bandwidth ``(bytes read + bytes written) / time``
counting the least traffic the operation needs (the image once and the columns once, for
either direction; padding and the reference's read-modify-write passes are not counted),
and the workspace: the size of the column matrix. The machine's copy bandwidth (a large
``np.copyto``, read + write) is printed in the header as the ceiling to compare with.
Before any timing, every implementation's output is checked against the reference
(im2col exactly, col2im to 1e-6) and the run aborts on a mismatch.

    minidl bench im2col [--quick] [--repeat 5] [--layers VGG,ResNet] [--impl my_im2col.py]
                        [--json out.json] [--markdown out.md] [--plot out.png]
    minidl bench im2col --compare a.json b.json   # two runs (two machines) side by side

The JSON records the machine (CPU model, logical CPUs, NumPy's BLAS, the kernels it chose for this
CPU and its configuration, versions, thread settings, the copy bandwidth, the GPU on cuda) and, per layer and implementation, the median, min and max time, the
GB/s and its fraction of the copy bandwidth.
"""
import argparse
import importlib
import importlib.util
import os
import statistics
import sys
import time

import numpy as np

from minidl import backend
from minidl.bench.common import (Device, machine_header, machine_info, measured_side, median_time, report_side,
                                 round_times, run_side, side_header, write_json)
from minidl.bench.conv import SUITE
from minidl.kernels import conv_output_size
from minidl.kernels import numpy_impl

IMPLS = ("loop", "numpy", "numba")  # on the CPU
CUDA_IMPLS = ("numpy", "cuda")  # on CuPy arrays
LOOP_MAX = 200_000  # column elements the loop version is timed on, at most (~0.1-0.3 s a call)


# ----------------------------------------------------------------------------------------------
# The loop version, for teaching. Same contract as minidl.kernels.im2col / col2im: columns of
# shape (N, C*kh*kw, OH*OW), row (c*kh + i)*kw + j, column oh*OW + ow.
# ----------------------------------------------------------------------------------------------

def loop_im2col(x, kernel, stride, padding, dilation):
    """im2col written out as loops: column entry (n, (c, i, j), (oh, ow)) is the pixel that
    kernel tap (i, j) of the window at output position (oh, ow) reads, or 0 in the padding."""
    n_, c_, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh_, ow_ = (conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw))
    col = np.zeros((n_, c_ * kh * kw, oh_ * ow_), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(oh_):
                        y = oh * sh - ph + i * dh  # the image row this tap reads
                        if not 0 <= y < h:
                            continue  # in the padding: the zeros stay
                        for ow in range(ow_):
                            xx = ow * sw - pw + j * dw
                            if 0 <= xx < w:
                                col[n, row, oh * ow_ + ow] = x[n, c, y, xx]
    return col


def loop_col2im(col, x_shape, kernel, stride, padding, dilation):
    """The adjoint of :func:`loop_im2col`: the same loops, adding each column entry back
    into the pixel it was read from (entries that came from the padding are dropped)."""
    n_, c_, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh_, ow_ = (conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw))
    x = np.zeros(x_shape, dtype=col.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(oh_):
                        y = oh * sh - ph + i * dh
                        if not 0 <= y < h:
                            continue
                        for ow in range(ow_):
                            xx = ow * sw - pw + j * dw
                            if 0 <= xx < w:
                                x[n, c, y, xx] += col[n, row, oh * ow_ + ow]
    return x


# ----------------------------------------------------------------------------------------------
# Your own implementation: loaded from a module, and held to the contract before it is timed.
# ----------------------------------------------------------------------------------------------

# label, input shape, kernel, stride, padding, dilation: the geometries every --impl must get right
CONTRACT_CASES = [
    ("square", (2, 3, 7, 7), (3, 3), (1, 1), (1, 1), (1, 1)),
    ("non-square", (2, 2, 6, 9), (2, 3), (1, 1), (0, 1), (1, 1)),
    ("strided", (1, 3, 9, 8), (3, 3), (2, 3), (1, 0), (1, 1)),
    ("dilated", (1, 2, 10, 11), (3, 2), (1, 1), (2, 1), (2, 3)),
    ("padding larger than the kernel", (1, 2, 5, 4), (2, 2), (1, 1), (3, 3), (1, 1)),
    ("1x1", (2, 4, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
]


class Rejected(Exception):
    """An implementation broke the contract; the message says where, first wrong index included."""


def load_user_impl(spec):
    """``(name, im2col, col2im)`` from the module ``spec`` names: a path to a .py file or a dotted
    module name. Either function may be None, not both."""
    if spec.endswith(".py") or os.sep in spec:
        if not os.path.isfile(spec):
            raise Rejected(f"--impl {spec}: no such file")
        name = os.path.splitext(os.path.basename(spec))[0]
        found = importlib.util.spec_from_file_location(f"minidl_bench_impl_{name}", spec)
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
    else:
        name = spec.rsplit(".", 1)[-1]
        try:
            module = importlib.import_module(spec)
        except ImportError as e:
            raise Rejected(f"--impl {spec}: cannot import it ({e})") from None
    im2col, col2im = getattr(module, "im2col", None), getattr(module, "col2im", None)
    if im2col is None and col2im is None:
        raise Rejected(f"--impl {spec}: the module has neither im2col nor col2im")
    return name, im2col, col2im


def _first_wrong(got, expected, exact):
    """'at index (...): expected E, got G (K of M values wrong)' for the first value that differs."""
    wrong = got != expected if exact else ~np.isclose(got, expected, rtol=1e-6, atol=1e-6)
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    return (f"first wrong value at index {first}: expected {expected[first]:.7g}, got {got[first]:.7g} "
            f"({int(wrong.sum())} of {wrong.size} values wrong)")


def _call(name, fname, fn, args, where, device):
    """``fn(*args)`` as a host array; Rejected if it raised or returned no array of ``device``."""
    try:
        out = fn(*args)
    except Exception as e:  # any failure of the user's code rejects it, with what it raised
        raise Rejected(f"{name} {fname} {where}: raised {type(e).__name__}: {e}") from None
    if not isinstance(out, np.ndarray if not device.cuda else backend.cupy().ndarray):
        raise Rejected(f"{name} {fname} {where}: returned a {type(out).__name__}, not a "
                       f"{'CuPy' if device.cuda else 'NumPy'} array")
    return backend.as_numpy(out)


def check_contract(name, im2col, col2im, device=Device()):
    """Raise Rejected unless ``im2col`` and ``col2im`` (either may be None) keep minidl's contract on
    every case of CONTRACT_CASES, in float32 and in float64, on arrays of ``device`` (NumPy arrays,
    or CuPy arrays on cuda):

    - ``im2col(x, kernel, stride, padding, dilation)`` returns the reference's (N, C*kh*kw, OH*OW)
      columns exactly, row ``(c*kh + i)*kw + j``, column ``oh*OW + ow``, in x's dtype;
    - ``col2im(col, x_shape, kernel, stride, padding, dilation)`` returns the reference's image to
      1e-6, in col's dtype;
    - together they are adjoint, ``<im2col(x), c> == <x, col2im(c)>`` (with the reference standing
      in for a function the module lacks);
    - neither changes its input."""
    rng = np.random.default_rng(0)
    for label, shape, *geometry in CONTRACT_CASES:
        for dtype in (np.float32, np.float64):
            where = (f"on the {label} case, {np.dtype(dtype).name} (input {shape}, kernel {geometry[0]}, stride "
                     f"{geometry[1]}, padding {geometry[2]}, dilation {geometry[3]})")
            x = rng.standard_normal(shape).astype(dtype)
            ref_col = numpy_impl.im2col(x, *geometry)
            c = rng.standard_normal(ref_col.shape).astype(dtype)
            ref_img = numpy_impl.col2im(c, shape, *geometry)
            col, img = ref_col, ref_img
            if im2col is not None:
                given = device.array(x.copy())
                col = _call(name, "im2col", im2col, (given, *geometry), where, device)
                if col.shape != ref_col.shape or col.dtype != x.dtype:
                    raise Rejected(f"{name} im2col {where}: returned shape {col.shape} {col.dtype}; expected "
                                   f"{ref_col.shape} {x.dtype}")
                if not np.array_equal(col, ref_col):
                    raise Rejected(f"{name} im2col {where}: {_first_wrong(col, ref_col, exact=True)}")
                if not np.array_equal(backend.as_numpy(given), x):
                    raise Rejected(f"{name} im2col {where}: changed its input x")
            if col2im is not None:
                given = device.array(c.copy())
                img = _call(name, "col2im", col2im, (given, shape, *geometry), where, device)
                if img.shape != shape or img.dtype != c.dtype:
                    raise Rejected(f"{name} col2im {where}: returned shape {img.shape} {img.dtype}; expected "
                                   f"{shape} {c.dtype}")
                if not np.allclose(img, ref_img, rtol=1e-6, atol=1e-6):
                    raise Rejected(f"{name} col2im {where}: {_first_wrong(img, ref_img, exact=False)}")
                if not np.array_equal(backend.as_numpy(given), c):
                    raise Rejected(f"{name} col2im {where}: changed its input col")
            lhs, rhs = np.vdot(col.astype(np.float64), c), np.vdot(x.astype(np.float64), img)
            scale = np.vdot(np.abs(col).astype(np.float64), np.abs(c))
            if abs(lhs - rhs) > (1e-5 if dtype == np.float32 else 1e-12) * scale:
                raise Rejected(f"{name} {where}: im2col and col2im are not adjoint: <im2col(x), c> = {lhs!r} but "
                               f"<x, col2im(c)> = {rhs!r}")


def load_impls(wanted):
    """name -> (im2col, col2im, module or None); Numba is left out when it is not installed."""
    impls = {}
    for name in wanted:
        if name == "cuda":
            from minidl.kernels import cuda_impl

            impls[name] = (cuda_impl.im2col, cuda_impl.col2im, None)
        elif name == "loop":
            impls[name] = (loop_im2col, loop_col2im, None)
        elif name == "numpy":
            impls[name] = (numpy_impl.im2col, numpy_impl.col2im, None)
        elif name == "numba":
            try:
                mod = importlib.import_module("minidl.kernels.numba_impl.im2col")
            except ImportError:
                continue
            impls[name] = (mod.im2col, mod.col2im, mod)
    return impls


def build_suite(quick, layers=None):
    """(name, input shape, kernel, stride, padding, dilation) for every layer to time."""
    suite = []
    for name, shape, _oc, k, s, pad in SUITE:
        if quick:
            shape = (max(2, shape[0] // 4),) + shape[1:]
        suite.append((name, shape, k, s, pad))
    for n in ((1, 2, 8) if quick else (1, 8, 32)):
        suite.append((f"VGG 3x3 N={n}", (n, 64, 56, 56), 3, 1, 1))
    for c in (16, 64, 256):
        suite.append((f"28x28 3x3 C={c}", (2 if quick else 8, c, 28, 28), 3, 1, 1))
    suite = [(name, shape, (k, k), (s, s), (p, p), (1, 1)) for name, shape, k, s, p in suite]
    if layers:
        keys = [key.strip().lower() for key in layers.split(",") if key.strip()]
        suite = [row for row in suite if any(key in row[0].lower() for key in keys)]
    return suite


def copy_bandwidth(mib, repeat, device=Device()):
    """GB/s of a large float32 copy on ``device`` (np.copyto, or cupy.copyto between device
    synchronisations), counting the bytes read and the bytes written."""
    src = device.array(np.random.default_rng(0).standard_normal(mib * 2 ** 18, dtype=np.float32))
    xp = backend.get_array_module(src)
    dst = xp.empty_like(src)
    t = median_time(synchronised(lambda: xp.copyto(dst, src), device), repeat=repeat, number=1)
    return 2 * src.nbytes / t / 1e9


def synchronised(fn, device):
    """``fn`` that returns once the device has done its work: on cuda, a call of ``fn`` and a
    device synchronisation, so that a call's time is its kernels' and not their queueing."""
    if not device.cuda:
        return fn

    def call():
        fn()
        device.sync()
    return call


def numba_first_call(mod, geometry):
    """Seconds of the first im2col and col2im calls in this process, and where their code came
    from: 'compiled', 'on-disk cache', or 'already loaded' (an earlier call in this process)."""
    shape, kernel, stride, padding, dilation = geometry
    x = np.ones(shape, np.float32)
    out = {}
    for fname, dispatcher, call in (
            ("im2col", mod._im2col.__wrapped__, lambda: mod.im2col(x, kernel, stride, padding, dilation)),
            ("col2im", mod._col2im.__wrapped__, lambda: mod.col2im(col, shape, kernel, stride, padding, dilation))):
        loaded = bool(dispatcher.signatures)
        hits, misses = sum(dispatcher.stats.cache_hits.values()), sum(dispatcher.stats.cache_misses.values())
        t0 = time.perf_counter()
        res = call()
        elapsed = time.perf_counter() - t0
        if fname == "im2col":
            col = np.ones(res.shape, np.float32)
        if loaded:
            source = "already loaded"
        elif sum(dispatcher.stats.cache_misses.values()) > misses:
            source = "compiled"
        elif sum(dispatcher.stats.cache_hits.values()) > hits:
            source = "on-disk cache"
        else:
            source = "?"
        out[fname] = {"seconds": elapsed, "source": source}
    return out


def check(impls, x, g, on_device, geometry, loop_batch, name):
    """Abort unless every implementation agrees with the host's reference on x (im2col) and g
    (col2im), given as ``on_device``, their copies on the device the implementations run on."""
    xd, gd = on_device
    kernel, stride, padding, dilation = geometry
    ref_col = numpy_impl.im2col(x, kernel, stride, padding, dilation)
    ref_img = numpy_impl.col2im(g, x.shape, kernel, stride, padding, dilation)
    for impl, (im2col, col2im, _) in impls.items():
        if impl == "numpy":
            continue
        m = loop_batch if impl == "loop" else x.shape[0]
        if m == 0:
            continue
        col = ref_col[:m] if im2col is None else backend.as_numpy(im2col(xd[:m], *geometry))
        if col.shape != ref_col[:m].shape or not np.array_equal(col, ref_col[:m]):
            sys.exit(f"minidl bench im2col: {impl} im2col differs from the NumPy reference on {name} "
                     f"(input {x[:m].shape}, kernel {kernel}, stride {stride}, padding {padding}); not timing it")
        img = ref_img[:m] if col2im is None else backend.as_numpy(col2im(gd[:m], x[:m].shape, *geometry))
        if img.shape != ref_img[:m].shape or not np.allclose(img, ref_img[:m], rtol=1e-6, atol=1e-6):
            err = np.max(np.abs(img - ref_img[:m])) if img.shape == ref_img[:m].shape else "shape"
            sys.exit(f"minidl bench im2col: {impl} col2im differs from the NumPy reference on {name} "
                     f"(input {x[:m].shape}, kernel {kernel}; max abs error {err}); not timing it")


def measure_layer(impls, name, shape, kernel, stride, padding, dilation, repeat, min_time, loop_max, device=Device()):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    n, c, h, w = shape
    oh = conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    col_shape = (n, c * kernel[0] * kernel[1], oh * ow)
    g = rng.standard_normal(col_shape, dtype=np.float32)
    per_sample = col_shape[1] * col_shape[2]
    loop_batch = min(n, loop_max // per_sample)
    geometry = (kernel, stride, padding, dilation)
    xd, gd = device.array(x), device.array(g)  # on cuda, copied once for the check and every timing
    check(impls, x, g, (xd, gd), geometry, loop_batch, name)

    workspace = g.nbytes
    traffic = x.nbytes + g.nbytes  # the image once and the columns once, either direction
    row = {"layer": name, "input": list(shape), "kernel": list(kernel), "stride": list(stride),
           "padding": list(padding), "dilation": list(dilation), "workspace_bytes": workspace,
           "bytes_moved": traffic, "loop_batch": loop_batch if "loop" in impls else None, "results": {}}
    for impl, (im2col, col2im, _) in impls.items():
        res = {}
        if impl == "loop":
            if loop_batch == 0:
                row["results"][impl] = None
                continue
            xs, gs, scale = x[:loop_batch], g[:loop_batch], n / loop_batch
            reps, number, mt = max(1, min(repeat, 3)), 1, None
        else:
            xs, gs, scale, reps, number, mt = xd, gd, 1.0, repeat, None, min_time
        kw = {"repeat": reps, "number": number} if mt is None else {"repeat": reps, "min_time": mt}
        # The reference returns a read-only view of x (no copy) for a 1x1 kernel with unit stride
        # and no padding, and so does Numba: then there is no traffic to count.
        xp = backend.get_array_module(xs)
        view = impl != "loop" and im2col is not None and bool(xp.may_share_memory(im2col(xs, *geometry), xs))
        for fname, fn in (("im2col", im2col and (lambda: im2col(xs, *geometry))),
                          ("col2im", col2im and (lambda: col2im(gs, xs.shape, *geometry)))):
            if fn is None:  # a module of yours with only one of the two
                res[f"{fname}_s"] = res[f"{fname}_gbps"] = None
                continue
            rounds = round_times(synchronised(fn, device), **kw)
            t = statistics.median(rounds)
            moved = 0 if (fname == "im2col" and view) else traffic / scale
            res[f"{fname}_s"] = t * scale
            res[f"{fname}_min_s"], res[f"{fname}_max_s"] = min(rounds) * scale, max(rounds) * scale
            res[f"{fname}_gbps"] = moved / t / 1e9 if moved else None
        res["im2col_view"] = bool(view)
        res["extrapolated_from_batch"] = loop_batch if impl == "loop" and loop_batch < n else None
        row["results"][impl] = res
    return row


def markdown_tables(rows, impls, copy_gbps):
    lines = []
    for fname in ("im2col", "col2im"):
        head = ["layer", "input", "k/s/p", "workspace MiB"]
        for impl in impls:
            head += [f"{impl} ms", f"{impl} GB/s"]
        head.append(f"{next(i for i in ('cuda', 'numba', 'numpy') if i in impls)} % copy")
        lines.append(f"**{fname}**\n")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
        for row in rows:
            cells = [row["layer"], "x".join(map(str, row["input"])),
                     f"{row['kernel'][0]}/{row['stride'][0]}/{row['padding'][0]}",
                     f"{row['workspace_bytes'] / 2 ** 20:.1f}"]
            for impl in impls:
                res = row["results"].get(impl)
                if res is None or res[f"{fname}_s"] is None:
                    cells += ["-", "-"]
                    continue
                mark = "*" if res["extrapolated_from_batch"] else ""
                cells.append(f"{res[f'{fname}_s'] * 1e3:.3f}{mark}")
                gbps = res[f"{fname}_gbps"]
                cells.append("view" if gbps is None else f"{gbps:.2f}" if gbps >= 1 else f"{gbps:.2g}")
            best = row["results"].get(next(i for i in ("cuda", "numba", "numpy") if i in impls))
            gbps = best and best[f"{fname}_gbps"]
            cells.append(f"{100 * gbps / copy_gbps:.0f}%" if gbps else "-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot(path, rows, impls, copy_gbps):
    """A roofline-style picture: for each implementation a panel of its im2col and col2im GB/s on
    every layer, against the copy bandwidth as the ceiling, the standard layers first, then the
    batch sweep and the channel sweep. Drawn on a Figure of its own, without pyplot."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print(f"matplotlib is not installed: --plot {path} skipped")
        return
    groups = [("layers", [r for r in rows if " N=" not in r["layer"] and " C=" not in r["layer"]]),
              ("batch sweep", [r for r in rows if " N=" in r["layer"]]),
              ("channel sweep", [r for r in rows if " C=" in r["layer"]])]
    order = [r for _, members in groups for r in members]
    fig = Figure(figsize=(max(8, len(order) * 0.7), 2.6 * len(impls) + 1))
    axes = fig.subplots(len(impls), 1, sharex=True, squeeze=False)[:, 0]
    xs = np.arange(len(order))
    for ax, impl in zip(axes, impls):
        for fname, marker in (("im2col", "o"), ("col2im", "s")):
            vals = [((r["results"].get(impl) or {}).get(f"{fname}_gbps") or np.nan) for r in order]
            ax.plot(xs, vals, marker, label=fname)
        ax.axhline(copy_gbps, color="k", linestyle="--", linewidth=1, label=f"copy {copy_gbps:.1f} GB/s")
        start = 0
        for name, members in groups:
            if members:
                ax.axvline(start - 0.5, color="0.8", linewidth=1)
                ax.text(start - 0.4, 0.97, name, fontsize=8, color="0.4", va="top", transform=ax.get_xaxis_transform())
                start += len(members)
        ax.set_yscale("log")
        ax.set_ylabel(f"{impl}\nGB/s")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xticks(xs)
    axes[-1].set_xticklabels([r["layer"] for r in order], rotation=45, ha="right", fontsize=8)
    fig.suptitle("im2col / col2im GB/s against the copy ceiling (float32; no mark: a view, or not timed)", fontsize=10)
    fig.tight_layout()
    with open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    print(f"wrote {path}", file=sys.stderr)


def torch_child(suite, repeat, min_time, device="cpu"):
    """In the PyTorch process: per layer, unfold's and fold's times, or why they were not timed,
    on ``device`` ("cpu", or "cuda": each call then between device synchronisations). The inputs
    are drawn as measure_layer draws them, and checked against minidl's NumPy reference (NumPy
    code: it starts no threads) before any timing."""
    import torch
    import torch.nn.functional as F

    if device == "cuda" and not torch.cuda.is_available():
        return {"header": side_header(torch), "unavailable": f"torch {torch.__version__} sees no CUDA device"}

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    out = {}
    for name, shape, kernel, stride, padding, dilation in suite:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        ref_col = numpy_impl.im2col(x, kernel, stride, padding, dilation)
        g = rng.standard_normal(ref_col.shape, dtype=np.float32)
        ref_img = numpy_impl.col2im(g, shape, kernel, stride, padding, dilation)
        xt, gt = torch.from_numpy(x).to(device), torch.from_numpy(g).to(device)
        geometry = {"kernel_size": kernel, "dilation": dilation, "padding": padding, "stride": stride}
        col, img = F.unfold(xt, **geometry).cpu().numpy(), F.fold(gt, shape[2:], **geometry).cpu().numpy()
        if col.shape != ref_col.shape or not np.array_equal(col, ref_col):
            out[name] = {"rejected": "unfold differs from minidl's im2col"}
            continue
        if not np.allclose(img, ref_img, rtol=1e-6, atol=1e-6):
            out[name] = {"rejected": "fold differs from minidl's col2im"}
            continue
        res = {}
        for fname, fn in (("im2col", lambda: (F.unfold(xt, **geometry), sync())),
                          ("col2im", lambda: (F.fold(gt, shape[2:], **geometry), sync()))):
            rounds = round_times(fn, repeat=repeat, min_time=min_time)
            res[f"{fname}_s"], res[f"{fname}_min_s"], res[f"{fname}_max_s"] = (statistics.median(rounds),
                                                                               min(rounds), max(rounds))
        out[name] = res
    return {"header": side_header(torch), "layers": out}


def add_torch_results(rows, torch_runs):
    """Put the PyTorch processes' times into ``rows``: per layer the median of their medians, the
    least minimum and the greatest maximum, with GB/s counted as for the others."""
    for row in rows:
        runs = [run["layers"].get(row["layer"]) for run in torch_runs]
        bad = next((r for r in runs if r is None or "rejected" in r), False)
        if bad is not False:
            sys.exit(f"minidl bench im2col: torch {bad['rejected'] if bad else 'gave no result'} on {row['layer']}")
        res = {}
        for fname in ("im2col", "col2im"):
            res[f"{fname}_s"] = statistics.median(r[f"{fname}_s"] for r in runs)
            res[f"{fname}_min_s"] = min(r[f"{fname}_min_s"] for r in runs)
            res[f"{fname}_max_s"] = max(r[f"{fname}_max_s"] for r in runs)
            res[f"{fname}_gbps"] = row["bytes_moved"] / res[f"{fname}_s"] / 1e9
        row["results"]["torch"] = {**res, "im2col_view": False, "extrapolated_from_batch": None}


def compare(path_a, path_b):
    """Print two runs' JSON side by side: per layer and implementation found in both, each one's
    median time and GB/s, and b's speed relative to a's (over 1: b is faster)."""
    import json

    runs = []
    for path in (path_a, path_b):
        with open(path) as f:
            runs.append(json.load(f))
    for tag, path, run in (("a", path_a, runs[0]), ("b", path_b, runs[1])):
        m = run.get("machine") or {}
        gpu = f"; on {(m.get('gpu') or ['cuda'])[0]}" if run.get("device") == "cuda" else ""
        print(f"{tag}: {path}: {m.get('cpu', '?')}, {m.get('logical_cpus', '?')} CPUs, {m.get('blas', '?')} "
              f"({m.get('blas_kernel') or '?'} kernels), numpy {m.get('numpy', '?')}, numba {m.get('numba', '?')}{gpu}; "
              f"copy bandwidth {run['copy_gbps']:.2f} GB/s")
    rows_b = {(r["layer"], tuple(r["input"])): r for r in runs[1]["rows"]}
    print(f"\n{'layer':<20} {'impl':<10} {'op':<7} {'a ms':>9} {'b ms':>9} {'a GB/s':>8} {'b GB/s':>8} {'b/a speed':>10}")
    for row_a in runs[0]["rows"]:
        row_b = rows_b.get((row_a["layer"], tuple(row_a["input"])))
        if row_b is None:
            continue
        for impl, res_a in row_a["results"].items():
            res_b = row_b["results"].get(impl)
            if not (res_a and res_b):
                continue
            for fname in ("im2col", "col2im"):
                ta, tb = res_a.get(f"{fname}_s"), res_b.get(f"{fname}_s")
                if not (ta and tb):
                    continue
                ga, gb = (f"{g:.2f}" if g else "view" for g in (res_a.get(f"{fname}_gbps"), res_b.get(f"{fname}_gbps")))
                print(f"{row_a['layer']:<20} {impl:<10} {fname:<7} {ta * 1e3:>9.3f} {tb * 1e3:>9.3f} {ga:>8} {gb:>8} "
                      f"{ta / tb:>9.2f}x")


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smaller batches (a quarter, at least 2), fewer repeats, a 64 MiB copy")
    p.add_argument("--repeat", type=int, default=None, help="rounds per measurement (default 5, 3 with --quick)")
    p.add_argument("--layers", default=None,
                   help="comma-separated substrings: time only the layers whose name contains one")
    p.add_argument("--impls", default=None, help=f"which of minidl's to time (default: all): {','.join(IMPLS)} on the "
                                                 f"CPU, {','.join(CUDA_IMPLS)} on cuda")
    p.add_argument("--impl", action="append", default=[], metavar="MODULE",
                   help="also time your own im2col and/or col2im: a .py file or a dotted module name (repeatable); "
                        "it is checked against the contract first, and not timed if it breaks it")
    p.add_argument("--loop-max", type=int, default=LOOP_MAX,
                   help="largest column matrix (elements) the loop version is timed on")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--markdown", default=None, help="also write the header and tables here")
    p.add_argument("--plot", default=None, help="PNG: per implementation, GB/s per layer and sweep against the copy "
                                                "ceiling (needs matplotlib)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch's unfold/fold out")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where every implementation runs: cpu (NumPy arrays), or cuda (CuPy arrays; minidl's CUDA "
                        "kernels and PyTorch CUDA's unfold/fold)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), default=None,
                   help="print two runs' --json side by side, with the ratio of their speeds, and exit")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    repeat = args.repeat or (3 if args.quick else 5)
    min_time = 0.05 if args.quick else 0.2
    if measured_side() == "torch":  # the PyTorch process that main started below
        return report_side(torch_child(build_suite(args.quick, args.layers), repeat, min_time, args.device))
    offered = CUDA_IMPLS if args.device == "cuda" else IMPLS
    wanted = [name.strip() for name in (args.impls or ",".join(offered)).split(",") if name.strip()]
    unknown = set(wanted) - set(offered)
    if unknown:
        p.error(f"unknown implementations on {args.device}: {', '.join(sorted(unknown))}; expected some of "
                f"{','.join(offered)}")
    if "numpy" not in wanted:
        wanted.insert(0, "numpy")  # the reference is always timed: everything is checked against it
    if args.device == "cuda":
        try:
            backend.cupy()
        except backend.DeviceError as e:
            p.exit(2, f"{p.prog}: error: {e}\n")
    device = Device(args.device)
    impls = load_impls([name for name in offered if name in wanted])
    rejected = []
    for spec in args.impl:
        try:
            name, im2col, col2im = load_user_impl(spec)
            if name in impls:
                raise Rejected(f"--impl {spec}: {name!r} is taken; rename the module")
            check_contract(name, im2col, col2im, device)
        except Rejected as e:
            rejected.append((spec, str(e)))
            print(f"minidl bench im2col: rejected, not timed: {e}", file=sys.stderr)
            continue
        impls[name] = (im2col, col2im, None)
    suite = build_suite(args.quick, args.layers)
    if not suite:
        p.error(f"no layer matches --layers {args.layers!r}")

    header = machine_header(device, torch_too=False)  # this process measures minidl: PyTorch stays out of it
    for spec in args.impl:
        header.append(f"--impl {spec}: " + ("rejected (not timed)" if spec in dict(rejected)
                                            else "passed the contract check on every case, float32 and float64"))
    first = None
    if "numba" in impls:
        mod = impls["numba"][2]
        first = numba_first_call(mod, suite[0][1:])
        header.append("numba first call in this process (cold, on " + "x".join(map(str, suite[0][1])) + "): "
                      + ", ".join(f"{f} {v['seconds'] * 1e3:.1f} ms ({v['source']})" for f, v in first.items()))
    elif "numba" in wanted:
        header.append("numba column shown as -")
    copy_mib = 64 if args.quick else 256
    copy_gbps = copy_bandwidth(copy_mib, repeat, device)
    header.append(f"copy bandwidth ({'cupy' if device.cuda else 'np'}.copyto, {copy_mib} MiB float32, read + write): "
                  f"{copy_gbps:.2f} GB/s")

    # PyTorch's process runs before and after minidl's measurements, so a slow spell of the
    # machine falls on both sides.
    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if not args.no_torch and not with_torch:
        header.append("torch: not installed, so no unfold/fold column")
    forwarded = list(argv if argv is not None else sys.argv[1:])
    torch_runs = [run_side("im2col", "torch", forwarded)] if with_torch else []
    if torch_runs and "unavailable" in torch_runs[0]:
        header.append(f"torch: {torch_runs[0]['unavailable']}; its column is left out")
        with_torch = False
    rows = [measure_layer(impls, name, *geo, repeat, min_time, args.loop_max, device) for name, *geo in suite]
    if with_torch:
        torch_runs.append(run_side("im2col", "torch", forwarded))
        add_torch_results(rows, torch_runs)
        impls["torch"] = None
        header.append(f"torch processes (before and after minidl's timings; medians of their medians): "
                      f"{torch_runs[0]['header']}")
    for row in rows:  # each result as a fraction of the ceiling, for comparing machines
        for res in filter(None, row["results"].values()):
            for fname in ("im2col", "col2im"):
                gbps = res.get(f"{fname}_gbps")
                res[f"{fname}_copy_fraction"] = gbps / copy_gbps if gbps else None
    if hasattr(os, "getloadavg"):  # other work on the machine skews every number below
        header.append("load average (1, 5, 15 min) after the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    if device.cuda:
        notes = ("on cuda, each call between device synchronisations, median of {repeat} rounds; - = not timed "
                 "(yours: it has only the other function)")
    else:
        notes = ("on the CPU, median of {repeat} rounds (loop: at most 3, one call each); * = loop timed on the first "
                 "samples of the batch only (`loop_batch` in the JSON) and scaled to the full batch; - = not timed "
                 f"(loop: one sample over --loop-max {args.loop_max} elements; numba: not installed; yours: it has "
                 "only the other function). The numba first call includes starting its thread pool")
    header += ["", f"float32 {notes.format(repeat=repeat)}. GB/s = (image bytes + column bytes) / time; workspace = "
               "the column matrix; 'view' = im2col returned a view of the input (no copy). % copy over 100: the "
               "layer's arrays fit in the caches, which the copy's do not.", ""]
    lines = header + markdown_tables(rows, list(impls), copy_gbps)
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.plot:
        plot(args.plot, rows, list(impls), copy_gbps)
    machine = {**machine_info(), "copy_gbps": copy_gbps, "gpu": device.header() if device.cuda else None}
    write_json(args.json, {"machine": machine, "device": args.device, "quick": args.quick, "repeat": repeat,
                           "dtype": "float32",
                           "implementations": list(impls), "rejected": dict(rejected), "copy_gbps": copy_gbps,
                           "copy_mib": copy_mib, "numba_first_call": first, "loop_max": args.loop_max,
                           "header": header, "rows": rows})
    if rejected:
        sys.exit(f"minidl bench im2col: {len(rejected)} --impl rejected:\n" + "\n".join(m for _, m in rejected))
    return 0
