"""benchmarks.graph_key through tools/benchmark_graph_key.py on the CPU: the stand-in ViT holds what the key must walk
(its tensors counted by an independent walk in tests/models/memory/test_tensors_read.py), every column filled,
bad options refused."""
import pytest

pytest.importorskip("bitsandbytes")


def test_a_two_depth_run_fills_the_table(capsys, load_tool):
    rows = load_tool("benchmark_graph_key")["main"](["--depths", "1,2", "--repeat", "1"])
    assert [r["depth"] for r in rows] == [1, 2]
    one, two = rows
    # a block more: its modules and tensors again (every block is alike: adapter, 4-bit layers, fp8 copies)
    assert two["modules"] == 2 * one["modules"] and two["tensors"] == 2 * one["tensors"] > 0
    assert all(r[k] > 0 for r in rows for k in ("tensors_read_ms", "params_ms", "modes_ms"))
    out = capsys.readouterr().out
    assert f"| 2 | {two['modules']} | {two['tensors']} |" in out


def test_bad_options_are_refused(capsys, load_tool):
    main = load_tool("benchmark_graph_key")["main"]
    for bad in (["--depths", "0"], ["--depths", "a"], ["--repeat", "0"]):
        with pytest.raises(SystemExit):
            main(bad)
    assert "--depths" in capsys.readouterr().err
