#!/usr/bin/env python3
"""Mutation testing: how many realistic bugs does minidl's test suite catch?

Each entry of MUTATIONS below is a bug a person could really write (a swapped index, a tie rule
read backwards, a sum in float32), given as exact source edits and the tests that ought to catch
it. For each one the script copies the repository into a fresh scratch directory, applies the
edits there and runs those tests on the copy. A bug the tests still pass with has *survived*: the
suite cannot tell that code from the real code, so a test is missing. The fraction caught measures
the power of the tests, not the correctness of minidl.

    python tools/mutate_suite.py                    # every bug (PyTorch's cross-checks run if installed)
    python tools/mutate_suite.py --without-torch    # every bug, with torch made unimportable
    python tools/mutate_suite.py --list             # the bugs, their files and tests
    python tools/mutate_suite.py --only maxpool-last-tie --only lrn-even-window-mirrored --jobs 2

The copy holds the files git knows of (tracked, plus untracked ones it does not ignore, so that new
tests count before they are committed), as they are in the working tree. Tests run as
``python -m pytest -x -q -p no:cacheprovider --basetemp=DIR TESTS`` in the copy, with PYTHONPATH
starting there (checked: the copy's minidl is the one imported, not an installed one) and
NUMBA_CACHE_DIR a fresh empty directory per run, so no compiled Numba code from another copy is ever
used. The unmutated tests run once first; if they fail, nothing is reported. A bug is caught when
pytest reports failing tests (exit status 1); a collection error or any other status is reported as
an error, not a catch.

Exit status: 0 when every bug was caught, 1 when one survived or ended in an error, 2 when the list
of mutations is wrong or the unmutated tests fail.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 1800  # per pytest run; a mutation that hangs the tests is reported, not waited on forever


@dataclass(frozen=True)
class Edit:
    file: str  # relative to the repository
    old: str   # must occur exactly once in the file (after the mutation's earlier edits)
    new: str


@dataclass(frozen=True)
class Mutation:
    name: str
    kind: str  # the class of bug
    edits: tuple
    tests: tuple  # pytest paths or node ids, relative to the repository


def mutation(name, kind, tests, *edits):
    """A Mutation from ``(file, old, new)`` triples."""
    return Mutation(name, kind, tuple(Edit(*e) for e in edits), tuple(tests))


NUMPY, NUMBA, CUDA = "minidl/kernels/numpy_impl/", "minidl/kernels/numba_impl/", "minidl/kernels/cuda_impl/"
KERNELS, ORACLES = "tests/test_kernels.py::", "tests/test_oracles.py::"
MAX_POOL_TESTS = ["tests/test_pooling.py", KERNELS + "test_max_pool_is_bit_identical",
                  KERNELS + "test_max_pool_windows_of_only_nan_or_only_minus_inf",
                  ORACLES + "test_max_pool_values_and_first_tie_argmax",
                  ORACLES + "test_max_pool_ties_send_the_gradient_to_the_first_pixel"]
AVG_POOL_TESTS = ["tests/test_pooling.py", KERNELS + "test_avg_pool_is_bit_identical",
                  ORACLES + "test_avg_pool_divisors_forward_and_backward",
                  ORACLES + "test_avg_pool_divisor_of_a_ceil_mode_edge_window"]
LRN_TESTS = ["tests/test_normalization.py", KERNELS + "test_lrn_agrees", ORACLES + "test_lrn_windows_of_every_size",
             ORACLES + "test_lrn_window_of_an_even_size_reaches_down"]
CONV_TESTS = ["tests/test_conv.py", KERNELS + "test_im2col_and_col2im_are_bit_identical"]
BATCH_NORM_TESTS = ["tests/test_normalization.py", "tests/test_nn_layers.py", KERNELS + "test_batch_norm_agrees",
                    ORACLES + "test_batch_norm_sums_are_as_accurate_as_float64_allows"]
DROPOUT_TESTS = ["tests/test_losses.py", "tests/test_nn_layers.py",
                 ORACLES + "test_dropout_draws_a_new_mask_every_call_and_repeats_after_reseeding"]
OPTIM_TESTS = ["tests/test_optim.py", KERNELS + "test_adam_update_is_bit_identical"]
WINOGRAD_TESTS = ["tests/test_winograd.py", KERNELS + "test_winograd_transforms_agree"]
REDUCTION_TESTS = ["tests/test_gradcheck_ops.py", "tests/test_autograd.py"]

MUTATIONS = [
    # --- kernel rules that every kernel set could share wrongly, as these do: the tests that hold the
    # kernel sets to one another cannot see them.
    # Ties go to the last pixel in window order, by someone who misread PyTorch's rule but kept the
    # all -inf window naming its first real pixel, which the pairwise tests check.
    mutation("maxpool-last-tie", "tie rule", MAX_POOL_TESTS,
             (NUMPY + "pooling.py", "== y) * small(count - k), out=code)", "== y) * small(k + 1), out=code)"),
             (NUMPY + "pooling.py", "first = count - code.astype(xp.int64)", "first = code.astype(xp.int64) - 1"),
             (NUMBA + "pooling.py", "if v > best or v != v:", "if v > best or v == best != lowest or v != v:"),
             (CUDA + "pooling.cu", "if (v > best || v != v) {",
              "if (v > best || (v == best && v != lowest) || v != v) {")),
    # For even sizes the window reaches size//2 channels up instead of down, forward and backward alike.
    mutation("lrn-even-window-mirrored", "LRN window", LRN_TESTS,
             (NUMPY + "lrn.py", "_window_sum(x * x, size // 2, (size - 1) // 2)",
              "_window_sum(x * x, (size - 1) // 2, size // 2)"),
             (NUMPY + "lrn.py", "_window_sum(gy * y / scale, (size - 1) // 2, size // 2)",
              "_window_sum(gy * y / scale, size // 2, (size - 1) // 2)"),
             (NUMBA + "lrn.py", "_scale(_rows(x), size // 2, (size - 1) // 2,",
              "_scale(_rows(x), (size - 1) // 2, size // 2,"),
             (NUMBA + "lrn.py", "(size - 1) // 2,\n              size // 2,",
              "size // 2,\n              (size - 1) // 2,"),
             (CUDA + "lrn.py", "*ints(size // 2, (size - 1) // 2)", "*ints((size - 1) // 2, size // 2)"),
             (CUDA + "lrn.py", "*ints((size - 1) // 2, size // 2),\n            t(-beta)",
              "*ints(size // 2, (size - 1) // 2),\n            t(-beta)")),
    # count_include_pad divides by the whole kernel, also where a ceil_mode window reaches past the padding.
    mutation("avgpool-divisor-unclipped", "divisor", AVG_POOL_TESTS,
             (NUMPY + "pooling.py", "end = xp.minimum(start + k, size + p)", "end = start + k"),
             (NUMBA + "pooling.py", "end = min(start + kernel, size + pad)", "end = start + kernel"),
             (CUDA + "pooling.cu", "long long end = lmin(start + kernel, size + pad);",
              "long long end = start + kernel;")),
    mutation("avgpool-include-pad-flipped", "divisor", AVG_POOL_TESTS,
             (NUMPY + "pooling.py", "counts.append(end - start if count_include_pad else",
              "counts.append(end - start if not count_include_pad else")),
    # --- im2col, col2im and the pooling windows
    mutation("col2im-width-dilation", "kernel index", CONV_TESTS,
             (NUMPY + "im2col.py", "top, left = i * dilation[0], j * dilation[1]",
              "top, left = i * dilation[0], j * dilation[0]"),
             (NUMBA + "im2col.py", "j * dw\n                    for q in range(q0, q1):\n                        dst[",
              "j * dh\n                    for q in range(q0, q1):\n                        dst["),
             (CUDA + "im2col.cu", "long long dx = x0 + pw - j * dw;", "long long dx = x0 + pw - j * dh;")),
    mutation("im2col-span-off-by-one", "kernel index", CONV_TESTS,
             (NUMBA + "im2col.py", "lo = min(count, max(0, (step - 1 - start) // step))",
              "lo = min(count, max(0, (step - start) // step))")),
    mutation("maxpool-window-end-off-by-one", "kernel index", MAX_POOL_TESTS,
             (NUMBA + "pooling.py", "j0, j1 = max(q * sw - pw, 0), min(q * sw - pw + kw, w)",
              "j0, j1 = max(q * sw - pw, 0), min(q * sw - pw + kw, w - 1)")),
    # --- batch norm
    mutation("bn-unbiased-batch-variance", "unbiased variance", BATCH_NORM_TESTS,
             (NUMPY + "batchnorm.py", "var = (centred * centred).mean(axis=axes)",
              "var = (centred * centred).sum(axis=axes) / (x.size // x.shape[1] - 1)"),
             (NUMBA + "batchnorm.py", "invstd[ch] = 1 / np.sqrt(squares / m + eps)",
              "invstd[ch] = 1 / np.sqrt(squares / (m - 1) + eps)"),
             (CUDA + "batchnorm.cu", "row_total(partial, i, parts) / m + eps",
              "row_total(partial, i, parts) / (m - 1) + eps")),
    mutation("bn-biased-running-var", "unbiased variance", BATCH_NORM_TESTS,
             ("minidl/ops/normalization.py", "momentum * var * (m / (m - 1))", "momentum * var")),
    # Keras's convention (momentum weighs the old value) in PyTorch's formula.
    mutation("bn-running-momentum-swapped", "running statistics", BATCH_NORM_TESTS,
             ("minidl/ops/normalization.py", "rm[...] = (1 - momentum) * rm + momentum * fn.mean",
              "rm[...] = momentum * rm + (1 - momentum) * fn.mean")),
    # The channel sums accumulated in the input's dtype: float32 for float32 inputs.
    mutation("bn-numba-float32-sums", "low-precision sum", BATCH_NORM_TESTS,
             (NUMBA + "batchnorm.py", "total = 0.0", "total = x.dtype.type(0.0)"),
             (NUMBA + "batchnorm.py", "sum_gy, sum_gy_xhat = 0.0, 0.0",
              "sum_gy, sum_gy_xhat = x.dtype.type(0.0), x.dtype.type(0.0)")),
    mutation("maxpool-backward-float32-sum", "low-precision sum", MAX_POOL_TESTS,
             (NUMBA + "pooling.py", "acc = np.zeros(gx.shape[1])", "acc = np.zeros(gx.shape[1], dtype=gy.dtype)"),
             (CUDA + "pooling.cu", "double sum = 0.0;\n        for (long long p = p0;",
              "T sum = 0.0;\n        for (long long p = p0;")),
    # --- dropout
    mutation("dropout-scale-by-p", "dropout scaling", DROPOUT_TESTS,
             ("minidl/ops/dropout.py", "x.dtype.type(1 / (1 - p))", "x.dtype.type(p)")),
    # p read as the probability of keeping: right at p = 0.5 only.
    mutation("dropout-scale-by-1/p", "dropout scaling", DROPOUT_TESTS,
             ("minidl/ops/dropout.py", "x.dtype.type(1 / (1 - p))", "x.dtype.type(1 / p)")),
    # "Honour the seed" by making a generator from it: the same mask at every step.
    mutation("dropout-reseeded-every-call", "dropout seeding", DROPOUT_TESTS,
             ("minidl/ops/dropout.py", "keep = random.rng(xp).random(x.shape) >= p",
              "keep = xp.random.default_rng(random._seed).random(x.shape) >= p")),
    # --- optimizers
    mutation("sgd-nesterov-lookahead", "optimizer formula", OPTIM_TESTS,
             ("minidl/optim/sgd.py", "grad = grad + momentum * buf if group", "grad = buf + momentum * grad if group")),
    mutation("sgd-damped-first-buffer", "optimizer formula", OPTIM_TESTS,
             ("minidl/optim/sgd.py", "buf = state[\"momentum_buffer\"] = grad.copy()",
              "buf = state[\"momentum_buffer\"] = (1 - group[\"dampening\"]) * grad")),
    mutation("sgd-weight-decay-sign", "optimizer formula", OPTIM_TESTS,
             ("minidl/optim/sgd.py", "grad = grad + group[\"weight_decay\"] * p.data",
              "grad = grad - group[\"weight_decay\"] * p.data")),
    mutation("adam-bias-correction-no-sqrt", "optimizer formula", OPTIM_TESTS,
             ("minidl/optim/adam.py", "math.sqrt(1 - beta2 ** t)", "(1 - beta2 ** t)")),
    # In every kernel set at once: the tests holding them to one another's bits cannot see it.
    mutation("adam-weight-decay-sign", "optimizer formula", OPTIM_TESTS,
             (NUMPY + "optim.py", "grad = grad + weight_decay * param", "grad = grad - weight_decay * param"),
             (NUMBA + "optim.py", "g = grad[i] + weight_decay * param[i]", "g = grad[i] - weight_decay * param[i]"),
             (CUDA + "optim.cu", "g = g + weight_decay * param[i];", "g = g - weight_decay * param[i];")),
    mutation("adagrad-lr-decay-from-step-1", "optimizer formula", OPTIM_TESTS,
             ("minidl/optim/adagrad.py", "(1 + (state[\"step\"] - 1) * group[\"lr_decay\"])",
              "(1 + state[\"step\"] * group[\"lr_decay\"])")),
    # --- losses: NumPy's fancy-indexing slip, an (N, N) matrix of every sample's log-probabilities
    mutation("cross-entropy-gathers-columns", "label gather", ["tests/test_losses.py", "tests/test_nn_layers.py"],
             ("minidl/ops/loss.py", "[xp.arange(logits.shape[0]), t]", "[:, t]")),
    # --- autograd: the gradients of a tensor used twice must add
    mutation("engine-overwrites-gradient", "gradient accumulation", ["tests/test_autograd.py"],
             ("minidl/tensor.py", "grads[key] = (t, grads[key][1] + g)", "grads[key] = (t, g)")),
    mutation("leaf-grad-overwritten", "gradient accumulation", ["tests/test_autograd.py"],
             ("minidl/tensor.py", "t.grad = g if t.grad is None else t.grad + g", "t.grad = g")),
    # --- Winograd
    mutation("winograd-G-sign", "Winograd constant", WINOGRAD_TESTS,
             ("minidl/kernels/winograd.py", "(0.5, -0.5, 0.5), (0.0, 0.0, 1.0))",
              "(0.5, 0.5, -0.5), (0.0, 0.0, 1.0))")),
    mutation("winograd-AT-sign", "Winograd constant", WINOGRAD_TESTS,
             (NUMPY + "winograd.py", "AT = ((1, 1, 1, 0), (0, 1, -1, -1))", "AT = ((1, 1, 1, 0), (0, 1, -1, 1))")),
    mutation("winograd-numba-BT-row", "Winograd constant", WINOGRAD_TESTS,
             (NUMBA + "winograd.py", "e[2, q] = d[2, q] - d[1, q]", "e[2, q] = d[1, q] - d[2, q]")),
    # --- serialization
    mutation("save-drops-none-values", "serialization of None",
             ["tests/test_serialization.py", ORACLES + "test_save_keeps_every_none"],
             ("minidl/serialization.py", "for k, v in obj.items()]", "for k, v in obj.items() if v is not None]")),
    # --- dim and axis handling
    # An axis left hard-coded from trying the layer on a (classes, batch) input.
    mutation("softmax-layer-ignores-dim", "dim handling",
             ["tests/test_nn_layers.py", ORACLES + "test_softmax_layers_normalise_along_their_dim"],
             ("minidl/nn/activation.py", "return F.softmax(x, axis=self.dim)", "return F.softmax(x, axis=0)")),
    mutation("log-softmax-backward-last-axis", "dim handling", ["tests/test_losses.py"] + REDUCTION_TESTS,
             ("minidl/ops/activation.py", "return gy - y.exp() * gy.sum(axis=self.axis, keepdims=True)",
              "return gy - y.exp() * gy.sum(axis=-1, keepdims=True)")),
    # Ties share the gradient over the whole tensor instead of over each reduced slice.
    mutation("max-tie-split-over-all-axes", "dim handling", REDUCTION_TESTS,
             ("minidl/ops/reduction.py", "weight = mask / mask.sum(axis=self.axes, keepdims=True)",
              "weight = mask / mask.sum(keepdims=True)")),
    mutation("mean-backward-first-axis-only", "dim handling", REDUCTION_TESTS,
             ("minidl/ops/reduction.py", "        for a in self.axes:\n            n *= self.in_shape[a]",
              "        n *= self.in_shape[self.axes[0]]")),
]


class MutationError(Exception):
    """A mutation that cannot be applied as written."""


def apply(m, root):
    """Apply the edits of ``m`` to the files under ``root``."""
    for e in m.edits:
        path = Path(root, e.file)
        text = path.read_text()
        count = text.count(e.old)
        if count != 1:
            raise MutationError(f"{m.name}: the old text occurs {count} times in {e.file}, expected once: {e.old!r}")
        path.write_text(text.replace(e.old, e.new))


def problems(mutations=MUTATIONS, root=REPO):
    """What is wrong with the list: duplicate names, edits that change nothing or do not apply
    exactly once (on a scratch copy of the edited files), missing test files."""
    found, names = [], set()
    for m in mutations:
        if m.name in names:
            found.append(f"{m.name}: the name is used twice")
        names.add(m.name)
        if not m.edits or not m.tests:
            found.append(f"{m.name}: needs at least one edit and one test")
        found += [f"{m.name}: an edit of {e.file} changes nothing" for e in m.edits if e.old == e.new]
        found += [f"{m.name}: no test file {file}" for file in (t.split("::")[0] for t in m.tests)
                  if not Path(root, file).is_file()]
        with tempfile.TemporaryDirectory() as scratch:
            for file in {e.file for e in m.edits}:
                if not Path(root, file).is_file():
                    found.append(f"{m.name}: no file {file}")
                    break
                Path(scratch, file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(root, file), Path(scratch, file))
            else:
                try:
                    apply(m, scratch)
                except MutationError as e:
                    found.append(str(e))
    return found


def repository_files(root=REPO):
    """The files git knows of: tracked, and untracked but not ignored (new tests count before a commit)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p and Path(root, p).is_file()})


def copy_repository(files, scratch):
    for f in files:
        target = Path(scratch, f)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(REPO, f), target)


TORCH_BLOCKER = 'raise ImportError("torch blocked by mutate_suite --without-torch")\n'
# Where minidl and torch come from in the copy's environment: find_spec imports neither.
PROBE = ("import importlib.util as u; print(u.find_spec('minidl').origin); "
         "print(getattr(u.find_spec('torch'), 'origin', None))")


@dataclass
class Result:
    name: str
    kind: str
    status: str   # "yes", "NO" or "ERROR"
    seconds: float
    detail: str   # the first failing test, or what went wrong
    output: str = ""


def run_tests(tests, without_torch, m=None):
    """Run ``tests`` on a fresh copy of the repository, with ``m`` applied if given."""
    name, kind = (m.name, m.kind) if m else ("(unmutated)", "")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        scratch, numba_cache, blocker = Path(tmp, "repo"), Path(tmp, "numba-cache"), Path(tmp, "no-torch")
        numba_cache.mkdir()
        copy_repository(repository_files(), scratch)
        if m:
            apply(m, scratch)
        path = [str(scratch)]
        if without_torch:
            Path(blocker, "torch").mkdir(parents=True)
            Path(blocker, "torch", "__init__.py").write_text(TORCH_BLOCKER)
            path.insert(0, str(blocker))
        env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache),
                   PYTHONPATH=os.pathsep.join(path + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        minidl_origin, torch_origin = subprocess.run([sys.executable, "-c", PROBE], cwd=scratch, env=env,
                                                     capture_output=True, text=True, check=True).stdout.split("\n")[:2]
        if not Path(minidl_origin).is_relative_to(scratch):
            return Result(name, kind, "ERROR", time.monotonic() - start, f"minidl imported from {minidl_origin}")
        if without_torch and not Path(torch_origin).is_relative_to(blocker):
            return Result(name, kind, "ERROR", time.monotonic() - start, f"torch not blocked: {torch_origin}")
        try:
            # Its own --basetemp: pytest sessions at once would otherwise prune each other's temporary directories.
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                   f"--basetemp={Path(tmp, 'basetemp')}", *tests],
                                  cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return Result(name, kind, "ERROR", time.monotonic() - start, f"timed out after {TIMEOUT_S} s")
    seconds, output = time.monotonic() - start, proc.stdout + proc.stderr
    failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, re.MULTILINE)  # ids may hold spaces
    if proc.returncode == 0:
        return Result(name, kind, "NO", seconds, "", output)
    if proc.returncode == 1:
        return Result(name, kind, "yes", seconds, failed.group(1) if failed else "(failures)", output)
    reason = f"pytest exit status {proc.returncode}" + (f" at {failed.group(1)}" if failed else "")
    return Result(name, kind, "ERROR", seconds, reason, output)


def table(results):
    rows = [("bug", "class", "caught", "seconds", "first failing test")]
    rows += [(r.name, r.kind, r.status, f"{r.seconds:.0f}", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without-torch", action="store_true", help="make torch unimportable in every run")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this bug (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="bugs run at once (default 1)")
    args = parser.parse_args(argv)

    found = problems()
    if found:
        print("the list of mutations is wrong:\n  " + "\n  ".join(found), file=sys.stderr)
        return 2
    selected = MUTATIONS
    if args.only:
        by_name = {m.name: m for m in MUTATIONS}
        unknown = [n for n in args.only if n not in by_name]
        if unknown:
            print(f"unknown bug {', '.join(unknown)}; --list names them", file=sys.stderr)
            return 2
        selected = [by_name[n] for n in dict.fromkeys(args.only)]
    if args.list:
        for m in selected:
            files = ", ".join(sorted({e.file for e in m.edits}))
            print(f"{m.name}  [{m.kind}]  {files}\n    tests: {' '.join(m.tests)}")
        return 0

    started = time.monotonic()
    all_tests = list(dict.fromkeys(t for m in selected for t in m.tests))
    print(f"unmutated: {' '.join(all_tests)}", file=sys.stderr, flush=True)
    baseline = run_tests(all_tests, args.without_torch)
    if baseline.status != "NO":  # "NO": no test failed
        print(f"the unmutated tests do not pass ({baseline.detail}); no report.\n{baseline.output[-4000:]}",
              file=sys.stderr)
        return 2
    print(f"unmutated tests pass ({baseline.seconds:.0f} s)", file=sys.stderr, flush=True)

    def one(m):
        r = run_tests(m.tests, args.without_torch, m)
        print(f"{r.name}: {r.status} ({r.seconds:.0f} s) {r.detail}", file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(one, selected))
    print(table(results))
    caught = sum(r.status == "yes" for r in results)
    print(f"\n{caught} of {len(results)} caught{' without torch' if args.without_torch else ''}; "
          f"{time.monotonic() - started:.0f} s in all")
    for r in results:
        if r.status == "ERROR" and r.output:
            print(f"\n--- {r.name}: {r.detail}\n{r.output[-3000:]}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
