"""benchmarks.augment through tools/benchmark_augment.py on the CPU: every chunk size gives the same pixels, and
memory grows with the chunk."""
import pytest


def test_tiny_cpu_run_fills_the_table(capsys, load_tool):
    main = load_tool("benchmark_augment")["main"]
    rows = main(["--device", "cpu", "--batch", "1", "--frames", "32", "--size", "48x80", "--chunks", "4,32",
                 "--rounds", "1", "--warmup", "0"])
    assert [r["chunk"] for r in rows] == [4, 32]
    assert all(r["same"] for r in rows)
    # float32 temporaries of 4 frames against 32: the larger chunk holds several times more at its peak
    assert rows[1]["peak_mib"] > 3 * rows[0]["peak_mib"] > 0
    out = capsys.readouterr().out
    assert "| 4 |" in out and "| 32 |" in out and "NO" not in out
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--chunks", "64,0"])
    assert "chunk sizes must be >= 1, got [64, 0]" in capsys.readouterr().err
