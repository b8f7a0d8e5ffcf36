"""benchmarks/bench_im2col.py: its teaching loop version agrees with the reference, and a
quick run on one small layer writes valid JSON and markdown."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_im2col  # noqa: E402

from minidl.kernels import numpy_impl  # noqa: E402

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
    bench_im2col.main(["--quick", "--layers", "LeNet conv2", "--repeat", "1", "--loop-max", "20000",
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
        bench_im2col.main(["--quick", "--layers", "LeNet conv2", "--impls", "loop,numpy", "--repeat", "1",
                           "--loop-max", "20000"])
