"""Checks on how the suite itself runs the Numba kernels and its optional dependencies.

- ``$MINIDL_REQUIRE`` (tests/conftest.py) makes a skip for a required module missing a failure;
- the Numba kernel tests pass with Numba's bounds checking on (off by default, an out-of-bounds
  index silently corrupts memory or kills the interpreter);
- Numba's on-disk cache can serve code compiled from an earlier source, and the suite's cache
  directory (tests/conftest.py::numba_cache_dir_for) follows the kernels' sources so it never does.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import numba_cache_dir_for

ROOT = Path(__file__).resolve().parent.parent
TAIL_CHARS = 6000


def _tail(done):
    return (done.stdout + done.stderr)[-TAIL_CHARS:]


def _pytest_with_conftest(tmp_path, **env):
    """A pytest session in a subprocess, on the test files of ``tmp_path``, with tests/conftest.py
    as a plugin and its environment changed by ``env`` (None removes a variable); the summary line."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the rootdir: no ini file above it counts
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), **env}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rA",
                           "--continue-on-collection-errors"],
                          cwd=tmp_path, env={k: v for k, v in env.items() if v is not None},
                          capture_output=True, text=True, timeout=120)
    return done, done.stdout.strip().splitlines()[-1]


def test_minidl_require_turns_a_skip_for_a_missing_module_into_a_failure(tmp_path):
    (tmp_path / "test_at_import.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_xyz')\n\ndef test_never_collected():\n    pass\n")
    (tmp_path / "test_in_tests.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\ndef missing():\n    return pytest.importorskip('no_such_module_xyz')\n\n"
        "def test_fixture(missing):\n    pass\n\n"
        "def test_body():\n    pytest.importorskip('no_such_module_xyz.sub')\n\n"
        "def test_other_reason():\n    pytest.skip('no GPU here')\n")
    done, summary = _pytest_with_conftest(tmp_path, MINIDL_REQUIRE=None)
    assert done.returncode == 0 and re.match(r"=+ 4 skipped in ", summary), _tail(done)

    done, summary = _pytest_with_conftest(tmp_path, MINIDL_REQUIRE="numba, no_such_module_xyz")
    # the module-level skip and the fixture's fail as errors (collection, setup), the test body's
    # as a failure; the skip for another reason stays one
    assert done.returncode == 1 and re.match(r"=+ 1 failed, 1 skipped, 2 errors in ", summary), _tail(done)
    message = ("MINIDL_REQUIRE=numba, no_such_module_xyz asks for 'no_such_module_xyz', "
               "so this fails instead of skipping")
    # counted above the short summary, which repeats whole messages only where $CI is set
    report = done.stdout.split("short test summary info")[0]
    assert report.count(message) == 3, _tail(done)
    assert "could not import 'no_such_module_xyz.sub'" in done.stdout
    assert re.search(r"SKIPPED \[1\] test_in_tests.py:\d+: no GPU here", done.stdout), _tail(done)


def test_the_numba_kernel_tests_pass_with_bounds_checking(tmp_path):
    # test_kernels.py's tests of the Numba kernels (the ``impl`` fixture's "numba" and the two on
    # ``numba_impl`` alone), compiled afresh with bounds checks: an index out of bounds raises
    # IndexError instead of reading or writing outside the array. NUMBA_OPT=0: the checks do not
    # depend on LLVM's optimisation, and compiling without it takes a third less time.
    pytest.importorskip("numba")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_OPT="0", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           "tests/test_kernels.py", "-k", "[numba or non_contiguous or serve_float32"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"with NUMBA_BOUNDSCHECK=1:\n{_tail(done)}"


# A cached kernel calling a cached function of another file. Python's own bytecode cache is off in
# the runs (PYTHONDONTWRITEBYTECODE): it too trusts a source that keeps its mtime and size.
_HELPER = "from numba import njit\n\n\n@njit(cache=True)\ndef g():\n    return {}\n"
_KERNEL = ("from numba import njit\n\nfrom helper import g\n\n\n"
           "@njit(cache=True)\ndef f():\n    return 10 * g() + {}\n\n\nprint(f())\n")


@pytest.mark.parametrize("edit", ["keeping_size_and_mtime", "of_a_called_function"])
def test_numba_can_serve_stale_code_from_a_cache_the_suites_directory_never_shares(tmp_path, edit):
    caching = pytest.importorskip("numba.core.caching")
    helper, kernel, caches = tmp_path / "helper.py", tmp_path / "kernel.py", tmp_path / "caches"

    def run(cache_dir):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run([sys.executable, str(kernel)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, _tail(done)
        return done.stdout.strip()

    helper.write_text(_HELPER.format(1))
    kernel.write_text(_KERNEL.format(1))
    before = numba_cache_dir_for([helper, kernel], caches)
    assert run(before) == "11"
    if edit == "keeping_size_and_mtime":
        stamp = kernel.stat()
        kernel.write_text(_KERNEL.format(2))  # one character: the same size and bytecode
        os.utime(kernel, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        assert kernel.stat().st_size == stamp.st_size
        # Numba before numba/numba#10659 trusts the cached f by the file's mtime and size; since
        # then it stamps the file with a hash of its content, and compiles f again.
        fresh, from_before = "12", "12" if hasattr(caching, "_hash_source_file") else "11"
    else:
        helper.write_text(_HELPER.format(2))
        # kernel.py is unchanged, and the cached f holds the g it was compiled with: every Numba
        # serves it (the cache knows nothing of what a function calls from other files)
        fresh, from_before = "21", "11"
    assert run(before) == from_before

    after = numba_cache_dir_for([helper, kernel], caches)
    assert after != before
    assert run(after) == fresh


def test_numba_caches_where_the_conftest_says():
    # Numba read NUMBA_CACHE_DIR after tests/conftest.py set it: nothing imported Numba before.
    numba = pytest.importorskip("numba")
    assert numba.config.CACHE_DIR == os.environ["NUMBA_CACHE_DIR"]
