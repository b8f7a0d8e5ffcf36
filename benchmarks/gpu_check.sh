#!/usr/bin/env bash
# One command that proves minidl's GPU path on a CUDA machine, in under 8 minutes on one H200:
#
#     bash benchmarks/gpu_check.sh               # from anywhere; minidl need not be installed
#     MINIDL_DATA=/path/with/mnist bash benchmarks/gpu_check.sh
#
# In order: the GPU, driver and library versions; the GPU tests (`pytest -m gpu tests`); the main job,
# `minidl train lenet5 --dataset mnist --device cuda` (only where the MNIST files are already in
# $MINIDL_DATA: this machine may have no network); minidl's host time per kernel launch and its
# kernels' first-call compile time (in an empty CuPy kernel cache); bench_train and bench_conv
# beside PyTorch CUDA in full float32; bench_im2col (the CUDA kernels' GB/s, PyTorch CUDA's
# unfold/fold beside them); bench_models for ResNet-18 and ResNet-50 at 224x224, batch
# 64 (step time and peak GPU memory); bench_train and bench_conv again with TF32 allowed.
#
# Every step runs under `timeout`, and the whole script under a budget (GPU_CHECK_BUDGET_S, default
# 460 s): a step that would start with too little of it left is skipped, and said so. Nothing stops
# at a failing step; a summary of every step's status and time comes last, and the exit status is
# 1 if any step failed or timed out. With $OUT set, everything printed goes to $OUT/gpu_check.log
# and the benchmarks' JSON next to it. PYTHON picks the interpreter (default: python3).
set -u
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PYTHON=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-460}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/minidl-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

RESULTS=""
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    RESULTS=$OUT
    exec > >(tee -a "$OUT/gpu_check.log") 2>&1
fi

with_json() {  # with_json FILE COMMAND...: COMMAND, plus --json $OUT/FILE where there is an $OUT
    local file=$1
    shift
    if [ -n "$RESULTS" ]; then "$@" --json "$RESULTS/$file"; else "$@"; fi
}

START=$(date +%s)
SUMMARY=()
FAILED=0

# step NAME TIMEOUT_S COMMAND...: run COMMAND under timeout, within what is left of the budget.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET_S - ($(date +%s) - START)))
    echo
    echo "=== $name"
    if [ "$left" -lt 20 ]; then
        echo "skipped: only ${left}s of the ${BUDGET_S}s budget left"
        SUMMARY+=("$(printf '%-48s %-22s' "$name" "skipped (budget)")")
        return 0
    fi
    if [ "$limit" -gt "$left" ]; then limit=$left; fi
    local t0 rc status
    t0=$(date +%s)
    # bash -c, so that COMMAND may be one of the functions below (exported to it)
    timeout -k 10 "$limit" bash -c '"$@"' step "$@"
    rc=$?
    case $rc in
        0) status="ok" ;;
        99) status="skipped" ;;
        124 | 137) status="TIMED OUT (${limit}s)"; FAILED=1 ;;
        *) status="FAILED (status $rc)"; FAILED=1 ;;
    esac
    echo "--- $name: $status in $(($(date +%s) - t0))s"
    SUMMARY+=("$(printf '%-48s %-22s %5ss' "$name" "$status" "$(($(date +%s) - t0))")")
}

versions() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host ${HOSTNAME:-?}, repo $ROOT"
    git -C "$ROOT" log -1 --format='commit %h %s' 2>/dev/null || true
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    "$PYTHON" - <<'EOF'
import platform
import sys

print(f"python {platform.python_version()} ({sys.executable})")
import numpy

print(f"numpy {numpy.__version__}")
try:
    import numba
    print(f"numba {numba.__version__}")
except ImportError as e:
    print(f"numba: not importable ({e})")
try:
    import cupy
    rt = cupy.cuda.runtime
    v = lambda n: f"{n // 1000}.{n % 1000 // 10}"
    name = rt.getDeviceProperties(rt.getDevice())["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"cupy {cupy.__version__}: CUDA runtime {v(rt.runtimeGetVersion())}, driver supports CUDA "
          f"{v(rt.driverGetVersion())}, {rt.getDeviceCount()} GPU(s), current: {name}")
except Exception as e:
    print(f"cupy: not usable ({type(e).__name__}: {e})")
try:
    import torch
    print(f"torch {torch.__version__}: CUDA {torch.version.cuda}, sees a GPU: {torch.cuda.is_available()}"
          + (f", cuDNN {torch.backends.cudnn.version()}" if torch.cuda.is_available() else ""))
except ImportError as e:
    print(f"torch: not importable ({e})")
import minidl
from minidl import backend

print(f"minidl {minidl.__version__} from {minidl.__file__}, CPU kernels: {minidl.config.kernels}")
try:
    backend.cupy()
    print("minidl: device 'cuda' is usable")
except backend.DeviceError as e:
    print(f"minidl: device 'cuda' is NOT usable: {e}")
EOF
}

# The main job needs the four MNIST files (raw or .gz) in $MINIDL_DATA/mnist or in $MINIDL_DATA
# itself (folders minidl only reads); it never downloads here.
MNIST_FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
mnist_folder() {
    local folder name
    [ -n "${MINIDL_DATA:-}" ] || return 1
    for folder in "$MINIDL_DATA/mnist" "$MINIDL_DATA"; do
        for name in $MNIST_FILES; do
            [ -f "$folder/$name" ] || [ -f "$folder/$name.gz" ] || continue 2
        done
        echo "$folder"
        return 0
    done
    return 1
}

main_job() {
    local folder
    if ! folder=$(mnist_folder); then
        echo "skipped: the MNIST files ($MNIST_FILES, raw or .gz) are not in \$MINIDL_DATA/mnist or \$MINIDL_DATA" \
             "(MINIDL_DATA=${MINIDL_DATA:-unset}); this machine may not reach the mirrors, so put them there and rerun"
        return 99
    fi
    local t0 rc ms
    t0=$(date +%s%N)
    "$PYTHON" -m minidl.cli train lenet5 --dataset mnist --device cuda --quiet --data-root "$folder" \
        --out "$WORK/lenet5-mnist-cuda"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "main job: exit status $rc, wall time $((ms / 1000)).$((ms % 1000 / 100)) s"
    if [ -f "$WORK/lenet5-mnist-cuda/metrics.jsonl" ]; then
        "$PYTHON" -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])][-1]; print(
            f'final: epoch {r[\"epoch\"]}, test accuracy {r[\"test_acc\"]:.4f}, {r[\"images_per_s\"]:.0f} img/s')" \
            "$WORK/lenet5-mnist-cuda/metrics.jsonl"
        [ -n "$RESULTS" ] && cp "$WORK/lenet5-mnist-cuda/metrics.jsonl" "$RESULTS/lenet5_mnist_cuda_metrics.jsonl"
    fi
    return $rc
}

# Host time per kernel call without synchronising, and the kernels' compile time on first use.
LAUNCH_PY=$(cat <<'EOF'
import os
import sys
import time

import numpy as np

from minidl import backend, kernels
from minidl.kernels.cuda_impl import _module

try:
    cp = backend.cupy()
except backend.DeviceError as e:
    sys.exit(f"error: {e}")
mode = sys.argv[1]
rng = np.random.default_rng(0)


def tiny(dtype):
    x = cp.asarray(rng.standard_normal((1, 2, 6, 6)).astype(dtype))
    col = cp.empty((1, 2 * 9, 16), dtype)
    g = cp.ones(2, dtype)
    return x, col, g


if mode == "compile":
    # One call of every kernel file, per dtype, in a fresh process with an empty (or warm) cache.
    print(f"CUPY_CACHE_DIR={os.environ.get('CUPY_CACHE_DIR')}")
    total = 0.0
    for dtype in (np.float32, np.float64):
        x, col, g = tiny(dtype)
        calls = {"im2col": lambda: kernels.im2col(x, (3, 3), (1, 1), (0, 0), (1, 1), col),
                 "pooling": lambda: kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False),
                 "lrn": lambda: kernels.lrn_forward(x, 3, 1.0, 0.75, 2.0),
                 "batchnorm": lambda: kernels.batch_norm_forward(x, g, g, 1e-5),
                 "winograd": lambda: kernels.winograd_input_transform(x, (1, 1))}
        for stem, call in calls.items():
            cp.cuda.Device().synchronize()
            t0 = time.perf_counter()
            call()
            cp.cuda.Device().synchronize()
            dt = time.perf_counter() - t0
            total += dt
            print(f"  first call into {stem + '.cu':13} {np.dtype(dtype).name:8} {dt * 1e3:8.1f} ms")
    print(f"  all {len(calls) * 2} (file, dtype) modules: {total:.2f} s")
else:
    n = 1000
    x, col, g = tiny(np.float32)
    y, argmax = kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    one = cp.ones(16, np.float32)
    lrn_out, lrn_scale = cp.empty_like(x), cp.empty_like(x)
    lrn_args = (x, *_module.ints(2, 36, 1, 1), np.float32(2), np.float32(1 / 3), np.float32(-0.75), lrn_out, lrn_scale)
    import minidl as mdl
    xt, wt = mdl.tensor(x), mdl.tensor(cp.ones((4, 2, 3, 3), np.float32))
    calls = [
        ("kernels.im2col into a workspace (1 launch)", lambda: kernels.im2col(x, (3, 3), (1, 1), (0, 0), (1, 1), col)),
        ("kernels.max_pool2d_forward (1 launch, 2 outputs)",
         lambda: kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)),
        ("kernels.max_pool2d_backward (1 launch)",
         lambda: kernels.max_pool2d_backward(y, argmax, x.shape, (2, 2), (2, 2), (0, 0))),
        ("kernels.batch_norm_forward (5 launches)", lambda: kernels.batch_norm_forward(x, g, g, 1e-5)),
        ("_module.launch alone (the seam: 1 launch, no allocation)",
         lambda: _module.launch("lrn", "lrn_forward", x.dtype, x.size, lrn_args)),
        ("for comparison: cupy elementwise one + one", lambda: one + one),
        ("for comparison: minidl conv2d forward, 1x2x6x6", lambda: mdl.nn.functional.conv2d(xt, wt)),
    ]
    print(f"host time per call, mean of {n} calls after warm-up, with no synchronisation between them:")
    for name, call in calls:
        for _ in range(20):
            call()
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        host = (time.perf_counter() - t0) / n
        cp.cuda.Device().synchronize()
        done = (time.perf_counter() - t0) / n
        print(f"  {name:52} {host * 1e6:7.1f} us   (until the GPU is done: {done * 1e6:7.1f} us)")
EOF
)

launch_and_compile() {
    local cache="$WORK/cupy-cache"
    mkdir -p "$cache"
    echo "first call of each kernel file, in a new process with an EMPTY CuPy kernel cache (NVRTC compiles):"
    CUPY_CACHE_DIR=$cache "$PYTHON" -c "$LAUNCH_PY" compile || return $?
    echo "the same in another new process, the cache now warm (CuPy loads the compiled modules):"
    CUPY_CACHE_DIR=$cache "$PYTHON" -c "$LAUNCH_PY" compile || return $?
    echo
    "$PYTHON" -c "$LAUNCH_PY" launch
}

export ROOT PYTHON WORK RESULTS MNIST_FILES LAUNCH_PY
export -f versions mnist_folder main_job launch_and_compile with_json

echo "minidl GPU check: budget ${BUDGET_S}s; log: ${RESULTS:-none (set OUT to keep one)}${RESULTS:+/gpu_check.log}"
step "versions" 60 versions
if ! "$PYTHON" -c "from minidl import backend; backend.cupy()" 2>/dev/null; then
    echo
    echo "minidl cannot use a GPU here (see 'minidl: device cuda is NOT usable' above): nothing more to check."
    exit 2
fi
step "GPU tests (pytest -m gpu tests)" 200 \
    "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider --tb=short --durations=5 tests
step "main job: minidl train lenet5 --device cuda" 180 main_job
step "kernel launch overhead and compile time" 60 launch_and_compile
step "bench_train --device cuda (float32)" 60 \
    with_json train_cuda.json "$PYTHON" benchmarks/bench_train.py --device cuda --steps 20
step "bench_conv --device cuda --quick (float32)" 90 \
    with_json conv_cuda.json "$PYTHON" benchmarks/bench_conv.py --device cuda --quick --repeat 2
step "bench_im2col --device cuda --quick" 60 \
    with_json im2col_cuda.json "$PYTHON" benchmarks/bench_im2col.py --device cuda --quick --repeat 3
step "bench_models resnet18 resnet50 224px batch 64" 150 \
    with_json models_cuda.json "$PYTHON" benchmarks/bench_models.py --device cuda --models resnet18 resnet50 \
    --batch 64 --image-size 224 --steps 3
step "bench_train --device cuda --tf32" 60 \
    with_json train_cuda_tf32.json "$PYTHON" benchmarks/bench_train.py --device cuda --tf32 --steps 20
step "bench_conv --device cuda --quick --tf32" 90 \
    with_json conv_cuda_tf32.json "$PYTHON" benchmarks/bench_conv.py --device cuda --quick --tf32 --repeat 2

echo
echo "=== summary ($(($(date +%s) - START))s of the ${BUDGET_S}s budget)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
