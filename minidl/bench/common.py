"""What every benchmark shares: the environment its processes start from, timing by median of
repeats, a header naming the machine, and running each framework in a process of its own
(`run_sides`); for the benchmarks that take ``--device``, the device they run on, timed between
device synchronisations.

The processes. A benchmark the user starts (``minidl bench NAME``, or a script in benchmarks/)
does its work in a process of its own, started by `relaunch` with minidl's thread settings
(`minidl_settings`): OpenBLAS and OpenMP read theirs once, when they load, so a process that has
imported NumPy cannot change them any more. A process that measures PyTorch starts from the
environment exactly as the user gave it (`user_environment`). Importing this module changes
nothing: a process's environment is chosen when it is started.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

# The framework a process measures when `run_sides` started it to measure one ("minidl" or "torch").
SIDE_VARIABLE = "MINIDL_BENCH_SIDE"
# In a process started with minidl's settings, the names of the variables they added to the
# user's environment, comma-separated: what `user_environment` takes away again.
ADDED_VARIABLE = "MINIDL_BENCH_ADDED"

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")


def median_time(fn, repeat=7, number=None, min_time=0.2):
    """Median seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls.

    ``number`` is chosen so one round lasts about ``min_time`` when not given.
    """
    return statistics.median(round_times(fn, repeat, number, min_time))


def round_times(fn, repeat=7, number=None, min_time=0.2):
    """Seconds per call of ``fn`` in each of ``repeat`` rounds (see `median_time`)."""
    fn()  # warm up: caches, lazy imports, JIT
    if number is None:
        number, elapsed = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time / 4:
                break
            number *= 4
        number = max(1, int(number * min_time / max(elapsed, 1e-9)))
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return rounds


def try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine_header(device=None, torch_too=True):
    """Lines naming the machine, versions and thread settings, for the top of every report; with a
    CUDA `Device`, the GPU, its driver and CUDA runtime, and CuPy's version and TF32 setting too.
    PyTorch's version and threads are asked of PyTorch, which imports it: a process that measures
    minidl passes ``torch_too=False``, so that PyTorch's thread pools never start in it."""
    import minidl

    lines = [
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}",
        f"python {platform.python_version()}, numpy {np.__version__}, minidl {minidl.__version__}, "
        f"minidl kernels: {minidl.config.kernels}",
    ]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        lines.append(f"numpy BLAS: {blas.get('name', '?')} {blas.get('version', '')}, kernels for {blas_kernel() or '?'}")
    except (TypeError, AttributeError):
        pass
    try:
        import numba

        lines.append(f"numba {numba.__version__}, numba threads {numba.get_num_threads()} "
                     f"(threading layer chosen on first parallel call)")
    except ImportError:
        lines.append("numba: not installed")
    torch = try_import_torch() if torch_too else None
    if torch is not None:
        lines.append(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    lines.append(f"thread settings: {thread_settings()}")
    if device is not None and device.cuda:
        lines += device.header(torch)
    return lines


def machine_info():
    """The machine and software a report's numbers come from, as JSON-able values: the CPU model,
    its logical CPUs, NumPy's BLAS, the kernels it chose for this CPU (`blas_kernel`) and its build
    configuration, the versions and the thread settings."""
    import minidl

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    except (TypeError, AttributeError):
        blas = {}
    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__, "minidl": minidl.__version__,
            "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
            "blas_kernel": blas_kernel(), "blas_configuration": blas.get("openblas configuration"),
            "threads": thread_settings()}
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    return info


def blas_kernel():
    """The kernels NumPy's OpenBLAS chose for this CPU when it loaded ("Haswell", "SkylakeX", ...),
    asked of the library itself: a build with DYNAMIC_ARCH carries kernels for many CPUs, and its
    build configuration names only the one it was built on. None where NumPy's BLAS is not an
    OpenBLAS or the loaded libraries cannot be listed (outside Linux)."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return None
    # numpy's wheels rename OpenBLAS's symbols (scipy_ prefix, 64_ suffix for 64-bit integers)
    names = ("openblas_get_corename", "openblas_get_corename64_", "scipy_openblas_get_corename",
             "scipy_openblas_get_corename64_")
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            corename = getattr(library, name, None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                return corename().decode()
    return None


def thread_settings():
    """This process's thread variables, as a report prints them."""
    return {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ} or "library defaults"


def side_header(torch=None):
    """One line on how this process, measuring one framework, computes: its BLAS and thread
    settings (and PyTorch's threads, given ``torch``)."""
    if torch is not None:
        info = [line.strip() for line in torch.__config__.parallel_info().splitlines()]
        described = [line for line in info if "parallel backend" in line.lower() or "Math Kernel" in line
                     or "BLAS" in line]
        return (f"torch {torch.__version__}, {torch.get_num_threads()} threads; {'; '.join(described)}; "
                f"thread settings: {thread_settings()}")
    import minidl

    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        blas = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, AttributeError):
        blas = "?"
    return (f"minidl {minidl.__version__}, {minidl.config.kernels} kernels; numpy BLAS {blas}; "
            f"thread settings: {thread_settings()}")


def torch_lenet5(torch, in_channels=1, classes=10):
    """minidl_models' LeNet-5 (tanh, average pooling) written with torch.nn, for the PyTorch side."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84),
                         nn.Tanh(), nn.Linear(84, classes))


def measured_side():
    """The framework this process measures for `run_sides` ("minidl" or "torch"); None in a
    benchmark's own process."""
    return os.environ.get(SIDE_VARIABLE)


def minidl_settings(environ):
    """The variables a process that runs minidl's side of a benchmark adds to ``environ``: those
    of the ``minidl`` command (`minidl.threads.process_settings`), and OpenBLAS's thread timeout.
    By default OpenBLAS's worker threads spin for 2**28 cycles (about 0.1 s) after each GEMM,
    competing with any other thread pool on the cores (the Numba kernels' between two GEMMs)."""
    from minidl.threads import process_settings

    settings = process_settings(environ)
    if "OPENBLAS_THREAD_TIMEOUT" not in environ:
        settings["OPENBLAS_THREAD_TIMEOUT"] = "4"
    return settings


def user_environment():
    """The environment as the user started the benchmark: this process's, without what minidl's
    settings added to it and without the benchmark's own variables."""
    added = set(filter(None, os.environ.get(ADDED_VARIABLE, "").split(","))) | {ADDED_VARIABLE, SIDE_VARIABLE}
    return {k: v for k, v in os.environ.items() if k not in added}


def environment_for(side=None, **overrides):
    """The environment of a new benchmark process: a PyTorch process (``side="torch"``) gets the
    user's own, as a PyTorch user's process would have it (OMP_WAIT_POLICY=PASSIVE alone cost
    PyTorch 25-30% of its LeNet-5 throughput on 2 cores); any other gets minidl's settings on top.
    ``overrides`` are variables set before minidl's settings are chosen (``OMP_NUM_THREADS="1"``)."""
    env = {**user_environment(), **overrides}
    if side != "torch":
        settings = minidl_settings(env)
        env.update(settings)
        env[ADDED_VARIABLE] = ",".join(settings)
    if side is not None:
        env[SIDE_VARIABLE] = side
    return env


def started_for_benchmark():
    """Whether this process was started by `relaunch` or `run_sides`, with the environment it needs."""
    return SIDE_VARIABLE in os.environ or ADDED_VARIABLE in os.environ


def command_for(target):
    """The command line that runs ``target``: a script's path (``*.py``), or the name of one of
    ``minidl bench``'s benchmarks."""
    return [sys.executable, target] if target.endswith(".py") else [sys.executable, "-m", "minidl.bench", target]


def relaunch(target, argv):
    """Run ``target`` (see `command_for`) with ``argv`` in a new process with minidl's thread
    settings, and return its exit status. Ctrl-C reaches both processes; this one waits for the
    other to stop."""
    child = subprocess.Popen([*command_for(target), *argv], env=environment_for())
    try:
        return child.wait()
    except KeyboardInterrupt:
        return child.wait()


def run_script(path, main):
    """The entry point of a benchmark script at ``path``: ``main()`` where this process was started
    for it, else the script again in a process that was (`relaunch`). Returns the exit status."""
    if started_for_benchmark():
        return main() or 0
    return relaunch(path, sys.argv[1:])


def run_side(target, side, args):
    """Run ``target`` (see `command_for`) with ``args`` in a process that measures ``side``
    ("minidl" or "torch"), started as `environment_for` says. Returns the JSON object it printed
    last (`report_side`); RuntimeError with the end of its stderr if it failed."""
    done = subprocess.run([*command_for(target), *args], env=environment_for(side), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {side} process of {os.path.basename(target)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_sides(target, args, rounds, sides=("minidl", "torch")):
    """Measure each side in processes of its own (`run_side`), alternating (minidl, torch, minidl,
    torch, ...) for ``rounds`` rounds, so that neither framework's thread pools or settings reach
    the other's, and a slow spell of the machine falls on both. Returns ``{side: [the object each
    of its processes reported, one per round]}``."""
    results = {side: [] for side in sides}
    for _ in range(rounds):
        for side in sides:
            results[side].append(run_side(target, side, args))
    return results


def report_side(payload):
    """Hand this side's results to `run_sides`, in the parent process."""
    print(json.dumps(payload))


def add_kernels_option(parser):
    """``--kernels auto|numpy|numba``; pass the parsed args to :func:`select_kernels`."""
    parser.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None,
                        help="minidl's CPU kernels (default: $MINIDL_KERNELS, else auto)")


def select_kernels(args):
    import minidl

    if args.kernels:
        minidl.config.kernels = args.kernels


def start_cuda_report(device):
    """Print the header of a ``--device cuda`` report and return ``(torch, torch_device)``: PyTorch
    (None when it is not installed) and its device string with minidl's TF32 choice (None when
    PyTorch cannot use the GPU, which the report then says)."""
    torch = try_import_torch()
    for line in machine_header(device):
        print(line)
    torch_device = device.torch_device(torch) if torch is not None else None
    if torch is not None and torch_device is None:
        print("torch: installed, but it sees no CUDA device; its columns are left out")
    return torch, torch_device


def add_device_option(parser):
    """``--device cpu|cuda`` and ``--tf32``; pass the parser and the parsed args to
    :func:`select_device` straight after parsing."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where minidl computes, and PyTorch beside it where the benchmark runs it (default: cpu)")
    parser.add_argument("--tf32", action="store_true",
                        help="with --device cuda: let float32 GEMMs and convolutions use TF32 tensor cores in both "
                             "libraries (CuPy: CUPY_TF32=1; PyTorch: torch.backends.cuda.matmul.allow_tf32 and "
                             "torch.backends.cudnn.allow_tf32). Default: full float32 on both")


def select_device(parser, args):
    """The `Device` that ``--device`` and ``--tf32`` ask for, with this process set up for it.

    On cuda: ``CUPY_TF32`` is set (to 1 with ``--tf32``, else 0), which CuPy reads once, when it
    is imported, so this must run before minidl first touches the GPU; then CuPy is imported
    through minidl, and where CuPy or a GPU is missing the benchmark exits with minidl's
    message (status 2) instead of a traceback."""
    if args.tf32 and args.device != "cuda":
        parser.error("--tf32 applies to --device cuda only")
    if args.device == "cuda":
        os.environ["CUPY_TF32"] = "1" if args.tf32 else "0"
        from minidl import backend

        try:
            backend.cupy()
        except backend.DeviceError as e:
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
            sys.exit(2)
    return Device(args.device, args.tf32)


class Device:
    """The device a benchmark runs on, and how to time work there.

    On cuda both libraries queue kernels and return before they finish, so every timed call is
    bracketed by a device synchronisation (`gpu_times`), and a call's first run, in which CuPy and
    minidl compile their kernels (or load them from CuPy's cache) and cuBLAS and cuDNN pick their
    algorithms, is reported apart from the steady state."""

    def __init__(self, name="cpu", tf32=False):
        self.name, self.tf32 = name, bool(tf32)
        self.cuda = name == "cuda"

    def array(self, a):
        """A host array placed on this device (minidl's backend does the copy)."""
        from minidl import backend

        return backend.to_device(a, self.name)

    def tensor(self, a, requires_grad=False):
        """A leaf minidl tensor on this device with the values of host array ``a``."""
        import minidl

        return minidl.tensor(self.array(a), requires_grad=requires_grad)

    def sync(self):
        """Wait for minidl's (CuPy's) queued GPU work; nothing on the CPU."""
        if self.cuda:
            from minidl import backend

            backend.cupy().cuda.Device().synchronize()

    def torch_device(self, torch):
        """PyTorch's device string for this device, with the same TF32 choice as minidl; None when
        PyTorch cannot use it (a CPU-only build on a GPU machine)."""
        if not self.cuda:
            return "cpu"
        if not torch.cuda.is_available():
            return None
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32
        return "cuda"

    def torch_sync(self, torch):
        if self.cuda:
            torch.cuda.synchronize()

    def header(self, torch=None):
        """Header lines for a CUDA run: the GPU, driver, runtime, CuPy and the TF32 setting."""
        from minidl import backend

        cp = backend.cupy()
        runtime = cp.cuda.runtime
        index = runtime.getDevice()
        props = runtime.getDeviceProperties(index)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

        def version(v):  # CUDA's 13000 -> 13.0
            return f"{v // 1000}.{v % 1000 // 10}"

        driver = ""
        try:  # the driver's own release number, where NVML's Python binding is installed
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            driver = (driver.decode() if isinstance(driver, bytes) else driver) + " "
        except Exception:
            pass
        lines = [f"gpu {index}: {name}, {props['totalGlobalMem'] / 2 ** 30:.0f} GiB, compute capability "
                 f"{props['major']}.{props['minor']}, {props['multiProcessorCount']} multiprocessors",
                 f"nvidia driver {driver}supporting CUDA {version(runtime.driverGetVersion())}, CUDA runtime "
                 f"{version(runtime.runtimeGetVersion())}, cupy {cp.__version__}",
                 "float32 GEMMs and convolutions: " + ("TF32 allowed (CUPY_TF32=1; torch allow_tf32 flags on)"
                                                       if self.tf32 else "full float32 (CUPY_TF32=0; torch "
                                                       "allow_tf32 flags off)"),
                 "minidl on cuda: CuPy arrays run minidl.kernels.cuda_impl whatever the CPU kernel set"]
        if torch is not None:
            cuda = torch.version.cuda or "none"
            seen = torch.cuda.is_available()
            cudnn = torch.backends.cudnn.version() if seen else None
            lines.append(f"torch CUDA {cuda}, cuDNN {cudnn}, sees the GPU: {seen}")
        return lines


def timed_call(fn, sync):
    """Seconds of one call of ``fn``, from a synchronised start to a synchronised end."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def gpu_times(fn, sync, repeat, warmup=1):
    """``(first, median)``: the seconds of the first call of ``fn`` in this process (kernel
    compiles, library set-up) and the median of ``repeat`` later calls, after ``warmup`` untimed
    ones; every timed call is bracketed by ``sync`` (a device synchronisation)."""
    first = timed_call(fn, sync)
    for _ in range(warmup):
        fn()
    return first, statistics.median(timed_call(fn, sync) for _ in range(repeat))


def write_json(path, payload):
    if path is None:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)
