"""The README's first command runs examples/autograd_tour.py: it must keep working."""
import os
import runpy


def test_autograd_tour_runs_and_learns(capsys):
    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "autograd_tour.py")
    runpy.run_path(path, run_name="__main__")
    out = capsys.readouterr().out
    assert "gradcheck(Cube): True" in out and "gradgradcheck(Cube): True" in out
    last = [line for line in out.splitlines() if line.startswith("step")][-1]
    assert float(last.split("accuracy")[1].strip().rstrip("%")) > 90
