"""`minigpt bench`'s table: speed-ups point the same way whatever the unit; the benchmarks' environment."""
import pytest

from minigpt import bench
from minigpt.cli import build_parser


def test_speedup_is_above_one_when_minigpt_is_faster():
    rate = {"minigpt": 30.0, "numpy": 10.0, "torch": None, "better": "higher"}  # e.g. tokens/s
    time = {"minigpt": 2.0, "numpy": 6.0, "torch": 1.0, "better": "lower"}  # ms
    assert bench.speedup(rate, "numpy") == pytest.approx(3.0)
    assert bench.speedup(rate, "torch") is None  # no figure, no ratio
    assert bench.speedup(time, "numpy") == pytest.approx(3.0)
    assert bench.speedup(time, "torch") == pytest.approx(0.5)


def test_table_has_one_line_per_row_and_every_column():
    rows = [{"bench": "kernels", "case": "gelu fwd", "unit": "GB/s", "minigpt": 12.5, "numpy": 2.5, "torch": None,
             "better": "higher", "of_peak": 0.6}]
    header, line = bench.format_table(rows).splitlines()
    assert header.split() == ["case", "unit", "minigpt", "NumPy", "PyTorch", "vs", "NumPy", "vs", "PyTorch", "of",
                              "peak"]
    assert line.split() == ["gelu", "fwd", "GB/s", "12.5", "2.5", "-", "5.00x", "-", "60%"]


def test_benchmarks_run_without_the_openblas_variables(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1000")
    env = bench.benchmark_environment()
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env and "PATH" in env


def test_cli_knows_the_benchmarks():
    args = build_parser().parse_args(["bench", "--quick", "--only", "kernels", "matmul"])
    assert args.quick and args.only == ["kernels", "matmul"]
    with pytest.raises(ValueError, match="unknown benchmark nope"):
        bench.run_benchmarks(["nope"])
