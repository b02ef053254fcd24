"""tools/benchmark_ddp.py: its run plan and commands, and (slow) the CPU smoke path: two Gloo processes train
the tiny QLoRA config, then resume from a checkpoint; the summary says every check passed."""
import os
import runpy
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "benchmark_ddp.py")


def test_run_plan_resumes_the_qlora_run_from_its_second_to_last_epoch(tmp_path):
    tool = runpy.run_path(TOOL)  # its functions, without running main()
    args = tool["parse_args"](["--data-dir", "d", "--out", str(tmp_path), "--s-epochs", "5"])
    runs = tool["plan_runs"](args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    assert [r["name"] for r in runs] == ["tiny_qlora_x2", "s_qlora_x2", "s_qlora_resume_x2", "s_adapter_x2",
                                         "s_adapter_x1", "s_qlora_x1"]
    assert [r["procs"] for r in runs] == [2, 2, 2, 2, 1, 1]
    resume = tool["command"](runs[2], args)
    at = resume.index("--resume")
    assert resume[at + 1] == os.path.join(str(tmp_path), "work", "s_qlora", "gpu2_id0", "checkpoint", "epoch_3.pth")
    assert resume[resume.index("--id") + 1] == "1"  # its own folder, gpu2_id1
    assert "--disable_deterministic" in resume and f"work_dir={tmp_path}/work/s_qlora" in resume
    picked = tool["plan_runs"](tool["parse_args"](["--data-dir", "d", "--out", "o", "--runs", "s_qlora_x1"]),
                               {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    assert [r["name"] for r in picked] == ["s_qlora_x1"]
    with pytest.raises(ValueError, match=r"unknown run\(s\) \['s_qlora_x3'\]"):
        tool["plan_runs"](tool["parse_args"](["--data-dir", "d", "--out", "o", "--runs", "s_qlora_x3"]), {
            k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})


def test_cfg_options_reach_every_run_after_the_work_dir(capsys):
    tool = runpy.run_path(TOOL)
    key = "model.backbone.data_preprocessor.augment_chunk_frames=128"
    args = tool["parse_args"](["--data-dir", "d", "--out", "o", "--cfg-options", key, "solver.train.num_workers=2"])
    for run in tool["plan_runs"](args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")}):
        cmd = tool["command"](run, args)
        options = cmd[cmd.index("--cfg-options") + 1:]
        assert options[0].startswith("work_dir=") and options[-2:] == [key, "solver.train.num_workers=2"]
    with pytest.raises(SystemExit):
        tool["parse_args"](["--data-dir", "d", "--out", "o", "--cfg-options", "no_equals_sign"])
    assert "expected KEY=VALUE, got ['no_equals_sign']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool["parse_args"](["--data-dir", "d", "--out", "o", "--cfg-options", "workflow.end_epoch=9"])
    assert "['workflow.end_epoch=9'] set by the tool per run" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_on_two_gloo_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, TOOL, "--smoke", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
         "--runs", "tiny_qlora_x2,tiny_qlora_resume_x2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "out" / "summary.md").read_text()
    for check in ("tiny_qlora_x2: trainable weights identical on all ranks",
                  "tiny_qlora_x2: quantized bytes unchanged since build",
                  "tiny_qlora_resume_x2: resumed weights equal tiny_qlora_x2's at epoch 0"):
        assert f"PASS: {check}" in summary
    assert "FAIL" not in summary
    log = (tmp_path / "out" / "logs" / "tiny_qlora_x2.log").read_text()
    assert log.count("[Consistency]: tag=epoch") == 2 and "world_size=2 ranks_agree=True" in log


def test_resume_without_its_checkpoint_is_not_started_and_says_why(tmp_path):
    tool = runpy.run_path(TOOL)
    args = tool["parse_args"](["--data-dir", "d", "--out", str(tmp_path), "--s-epochs", "2",
                               "--runs", "s_qlora_x2,s_qlora_resume_x2"])
    original, resume = tool["plan_runs"](args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    path = os.path.join(str(tmp_path), "work", "s_qlora", "gpu2_id0", "checkpoint", "epoch_0.pth")
    assert resume["resume_epoch"] == 0 and tool["resume_checkpoint"](resume) == path
    assert tool["missing_input"](original, []) is None
    assert path in tool["missing_input"](resume, [])  # a fresh machine: nothing to resume yet
    assert "s_qlora_x2 ended with exit 1" in tool["missing_input"](resume, [dict(name="s_qlora_x2", rc=1)])
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    assert tool["missing_input"](resume, []) is None
    record = tool["not_started"](resume, "no checkpoint")
    assert record["rc"] is None and record["resume_of"] == "s_qlora_x2"
    verdict = tool["verdicts"]([record])[0]
    assert verdict == ("s_qlora_resume_x2: exit code 0", False, "not started: no checkpoint")
