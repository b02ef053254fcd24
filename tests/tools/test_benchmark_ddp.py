"""tools/benchmark_ddp.py, slow: the CPU smoke path: two Gloo processes train the tiny QLoRA config, then resume
from a checkpoint; the summary says every check passed, from the runs' metrics.jsonl records."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "benchmark_ddp.py")


@pytest.mark.slow
def test_smoke_run_on_two_gloo_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, TOOL, "--smoke", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
         "--runs", "tiny_qlora_x2"],  # resuming on two ranks: tests/tools/test_two_machines.py
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "out" / "summary.md").read_text()
    for check in ("tiny_qlora_x2: trainable weights identical on all ranks",
                  "tiny_qlora_x2: quantized bytes unchanged since build"):
        assert f"PASS: {check}" in summary
    assert "FAIL" not in summary
    log = (tmp_path / "out" / "logs" / "tiny_qlora_x2.log").read_text()
    assert log.count("[Consistency]: tag=epoch") == 2 and "world_size=2 ranks_agree=True" in log  # human lines
    with open(tmp_path / "out" / "work" / "tiny_qlora" / "gpu2_id0" / "metrics.jsonl", encoding="utf8") as f:
        records = [json.loads(line) for line in f]
    checks = [r for r in records if r["event"] == "consistency" and r["tag"] == "epoch"]
    assert len(checks) == 2 and all(r["ranks_agree"] and r["world_size"] == 2 for r in checks)
    reported = json.loads((tmp_path / "out" / "summary.json").read_text())[0]
    assert reported["checks"] == 2 and reported["epochs"] == 2  # the report read the same records
