"""tools/benchmark_backbone.py runs on the CPU with tiny settings and counts what trains per mode."""
import os
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_benchmark_tiny_cpu_rows(capsys):
    tool = runpy.run_path(os.path.join(ROOT, "tools", "benchmark_backbone.py"))
    args = ["--sizes", "tiny", "--frames", "32", "--img-size", "32", "--steps", "1", "--warmup", "0", "--device", "cpu"]
    rows = {r["mode"]: r for r in tool["main"](args)}
    assert set(rows) == {"adapter", "frozen", "fullft"}
    dims, depth = 32, 2  # the tiny size: adapters of 8 hidden channels in both blocks
    adapter = (dims * 8 + 8) + (8 * dims + dims) + (8 * 3 + 8) + (8 * 8 + 8) + 1
    assert rows["adapter"]["trainable"] == depth * adapter
    assert rows["adapter"]["total"] == rows["fullft"]["total"] + depth * adapter
    assert rows["frozen"]["trainable"] == 0
    assert rows["fullft"]["trainable"] == rows["fullft"]["total"] - 2 * dims  # all but the unused fc_norm
    assert all(r["step_s"] > 0 and r["peak_gib"] is None for r in rows.values())
    out = capsys.readouterr().out
    assert "| tiny | adapter |" in out and "| size | mode |" in out
