"""``minidl bench im2col`` (minidl/bench/im2col.py): its teaching loop version agrees with the
reference; a quick run on one small layer writes valid JSON and markdown; a kernel of your own is
held to the contract, then timed; PyTorch's unfold/fold are a column from processes of their own;
and the installed command runs it all."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minidl.bench import im2col as bench_im2col
from minidl.kernels import numpy_impl
from test_bench_train import THREAD_VARIABLES  # what minidl's processes add; a user starts without them

GEOMETRIES = [  # input shape, kernel, stride, padding, dilation
    ((2, 3, 7, 6), (3, 3), (1, 1), (0, 0), (1, 1)),
    ((1, 2, 9, 8), (3, 2), (2, 1), (1, 2), (1, 1)),
    ((2, 2, 10, 9), (3, 3), (2, 3), (2, 1), (2, 2)),
    ((1, 3, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 1, 4, 4), (5, 5), (3, 3), (2, 2), (1, 1)),
]


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", GEOMETRIES)
def test_loop_version_matches_reference(shape, kernel, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    ref = numpy_impl.im2col(x, kernel, stride, padding, dilation)
    col = bench_im2col.loop_im2col(x, kernel, stride, padding, dilation)
    assert col.dtype == np.float32 and np.array_equal(col, ref)
    g = rng.standard_normal(ref.shape).astype(np.float32)
    img = bench_im2col.loop_col2im(g, shape, kernel, stride, padding, dilation)
    assert img.shape == shape and img.dtype == np.float32
    np.testing.assert_allclose(img, numpy_impl.col2im(g, shape, kernel, stride, padding, dilation),
                               rtol=1e-6, atol=1e-6)


def test_quick_run_writes_json_and_markdown(tmp_path, capsys):
    out_json, out_md = tmp_path / "im2col.json", tmp_path / "im2col.md"
    bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2", "--repeat", "1", "--loop-max", "20000",
                       "--json", str(out_json), "--markdown", str(out_md)])
    data = json.loads(out_json.read_text())
    assert [row["layer"] for row in data["rows"]] == ["LeNet conv2"]
    row = data["rows"][0]
    assert row["workspace_bytes"] == 32 * 6 * 25 * 10 * 10 * 4
    assert {"loop", "numpy"} <= set(row["results"]) and data["copy_gbps"] > 0
    for impl, res in row["results"].items():
        assert res["im2col_s"] > 0 and res["col2im_s"] > 0 and res["col2im_gbps"] > 0, impl
    md = out_md.read_text()
    assert "copy bandwidth" in md and "| LeNet conv2 |" in md
    assert md.count("| LeNet conv2 |") == 2  # one row in the im2col table, one in the col2im table
    assert "| LeNet conv2 |" in capsys.readouterr().out


def test_mismatch_aborts(monkeypatch):
    def wrong(x, kernel, stride, padding, dilation):
        return numpy_impl.im2col(x, kernel, stride, padding, dilation) + 1

    monkeypatch.setattr(bench_im2col, "loop_im2col", wrong)
    with pytest.raises(SystemExit, match="loop im2col differs"):
        bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2", "--impls", "loop,numpy", "--repeat", "1",
                           "--loop-max", "20000"])


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_your_own_kernel_is_checked_then_timed_next_to_the_others(tmp_path, capsys):
    out_json = tmp_path / "im2col.json"
    bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2", "--repeat", "1", "--impls", "numpy",
                       "--impl", os.path.join(ROOT, "examples", "my_im2col.py"), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert "--impl" in out and "passed the contract check on every case, float32 and float64" in out
    assert "my_im2col ms" in out and "my_im2col GB/s" in out
    res = json.loads(out_json.read_text())["rows"][0]["results"]["my_im2col"]
    assert res["im2col_s"] > 0 and res["col2im_s"] is None  # the example has no col2im: "-" in its table


WRONG = """import numpy as np
from minidl.kernels import numpy_impl


def im2col(x, kernel, stride, padding, dilation):
    col = numpy_impl.im2col(x, kernel, stride, padding, dilation).copy()
    if stride != (1, 1):  # right until the stride is not 1
        col[0, 4, 2] += 1
    return col
"""


@pytest.mark.parametrize("body, expected", [
    (WRONG, r"wrong im2col on the strided case, float32 \(input \(1, 3, 9, 8\), kernel \(3, 3\), stride \(2, 3\), "
            r"padding \(1, 0\), dilation \(1, 1\)\): first wrong value at index \(0, 4, 2\): expected -?[\d.]+, "
            r"got -?[\d.]+ \(1 of 270 values wrong\)"),
    ("def col2im(col, x_shape, kernel, stride, padding, dilation):\n    return col\n",
     r"wrong col2im on the square case, float32 .*: returned shape \(2, 27, 49\) float32; expected \(2, 3, 7, 7\)"),
    ("def im2col(x, *geometry):\n    x[...] = 0\n    raise RuntimeError('out of ideas')\n",
     r"wrong im2col on the square case, float32 .*: raised RuntimeError: out of ideas"),
    ("x = 1\n", r"--impl .*wrong.py: the module has neither im2col nor col2im"),
])
def test_a_kernel_that_breaks_the_contract_is_rejected_and_not_timed(tmp_path, capsys, body, expected):
    (tmp_path / "wrong.py").write_text(body)
    out_json = tmp_path / "im2col.json"
    with pytest.raises(SystemExit, match="1 --impl rejected"):
        bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2", "--repeat", "1", "--impls", "numpy",
                           "--impl", str(tmp_path / "wrong.py"), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert re.search("rejected, not timed: " + expected, captured.err), captured.err
    data = json.loads(out_json.read_text())
    assert "wrong" not in data["rows"][0]["results"] and list(data["rejected"]) == [str(tmp_path / "wrong.py")]
    assert "wrong ms" not in captured.out and "rejected (not timed)" in captured.out


def test_json_records_the_machine_and_spread_and_compare_prints_two_runs_side_by_side(tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2", "--repeat", "2", "--impls", "numpy",
                           "--json", str(path)])
    data = json.loads(paths[0].read_text())
    assert {"cpu", "logical_cpus", "blas", "numpy", "minidl", "threads"} <= set(data["machine"])
    res = data["rows"][0]["results"]["numpy"]
    assert res["im2col_min_s"] <= res["im2col_s"] <= res["im2col_max_s"]
    assert res["col2im_copy_fraction"] == pytest.approx(res["col2im_gbps"] / data["copy_gbps"])
    capsys.readouterr()
    bench_im2col.main(["--compare", str(paths[0]), str(paths[1])])
    out = capsys.readouterr().out
    b = json.loads(paths[1].read_text())["rows"][0]["results"]["numpy"]
    ratio = res["col2im_s"] / b["col2im_s"]
    assert re.search(rf"LeNet conv2 +numpy +col2im .* {ratio:.2f}x", out), out
    assert out.startswith(f"a: {paths[0]}: ") and "copy bandwidth" in out


def minidl_bench(*args, timeout=300):
    """Run the installed ``minidl bench im2col`` as a user would, in a fresh environment."""
    command = shutil.which("minidl") or shutil.which("minidl", path=os.path.dirname(sys.executable))
    assert command, "the minidl command is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return subprocess.run([command, "bench", "im2col", "--quick", "--layers", "LeNet conv2", "--repeat", "1",
                           "--impls", "numpy", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_minidl_command_times_your_kernel_next_to_pytorchs_in_processes_of_their_own(tmp_path, torch):
    out_json = tmp_path / "im2col.json"
    done = minidl_bench("--impl", os.path.join("examples", "my_im2col.py"), "--json", str(out_json))
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| LeNet conv2 |")]
    assert len(table) == 2 and "my_im2col ms" in done.stdout and "torch ms" in done.stdout
    data = json.loads(out_json.read_text())
    res = data["rows"][0]["results"]
    assert res["my_im2col"]["im2col_s"] > 0 and res["torch"]["im2col_s"] > 0 and res["torch"]["col2im_gbps"] > 0
    assert res["torch"]["im2col_min_s"] <= res["torch"]["im2col_s"]
    header = "\n".join(data["header"])
    assert "torch processes (before and after minidl's timings; medians of their medians): torch 2" in header
    # minidl measured with its thread settings, PyTorch never imported; PyTorch from the environment as the
    # user gave it
    assert "thread settings: {" in header and "'OPENBLAS_THREAD_TIMEOUT': '4'" in header
    assert "torch threads" not in header
    assert header.split("torch processes")[1].split("\n")[0].endswith("thread settings: library defaults")
    assert data["machine"]["threads"]["OMP_WAIT_POLICY"] == "PASSIVE"


def test_the_minidl_command_rejects_a_wrong_kernel_with_its_first_wrong_index(tmp_path):
    (tmp_path / "wrong.py").write_text(WRONG)
    done = minidl_bench("--no-torch", "--impl", str(tmp_path / "wrong.py"))
    assert done.returncode == 1
    assert re.search(r"rejected, not timed: wrong im2col on the strided case, float32 .*: first wrong value at "
                     r"index \(0, 4, 2\)", done.stderr), done.stderr
    assert "wrong ms" not in done.stdout and "rejected (not timed)" in done.stdout


def test_the_pytorch_process_checks_unfold_against_the_reference(torch):
    suite = bench_im2col.build_suite(True, "LeNet conv2")
    run = bench_im2col.torch_child(suite, repeat=1, min_time=0.001)
    assert set(run["layers"]["LeNet conv2"]) >= {"im2col_s", "col2im_s"}


def test_plot_draws_a_panel_per_implementation(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "roofline.png"
    bench_im2col.main(["--quick", "--no-torch", "--layers", "LeNet conv2,C=16", "--repeat", "1", "--impls",
                       "numpy", "--impl", os.path.join(ROOT, "examples", "my_im2col.py"), "--plot", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width = imread(str(out)).shape[:2]
    assert height > width / 2  # two panels stacked: numpy's and my_im2col's


@pytest.mark.gpu
def test_on_cuda_every_implementation_runs_on_cupy_arrays(tmp_path, capsys):
    """minidl's CUDA kernels and the reference on CuPy are columns, a module of yours is checked and
    timed on CuPy arrays, and PyTorch's column is CUDA's (left out, and said so, where PyTorch sees no GPU)."""
    from minidl import backend

    try:
        backend.cupy()
    except backend.DeviceError as e:
        pytest.skip(str(e))
    out_json = tmp_path / "im2col.json"
    bench_im2col.main(["--quick", "--device", "cuda", "--layers", "LeNet conv2,ResNet 1x1", "--repeat", "1",
                       "--impl", os.path.join(ROOT, "examples", "my_im2col.py"), "--json", str(out_json)])
    data = json.loads(out_json.read_text())
    assert data["device"] == "cuda" and data["machine"]["gpu"][0].startswith("gpu ")
    assert data["implementations"][:3] == ["numpy", "cuda", "my_im2col"]
    conv2, one_by_one = (row["results"] for row in data["rows"])
    assert conv2["cuda"]["im2col_gbps"] > 0 and conv2["cuda"]["col2im_gbps"] > 0 and conv2["my_im2col"]["im2col_s"] > 0
    assert one_by_one["cuda"]["im2col_view"] and one_by_one["cuda"]["im2col_gbps"] is None
    header = "\n".join(data["header"])
    assert "cupy.copyto" in header and "on cuda, each call between device synchronisations" in header
    assert ("torch" in conv2) != ("sees no CUDA device; its column is left out" in header)
    assert "| LeNet conv2 |" in capsys.readouterr().out
