"""benchmarks.ddp.runs: the run plan and commands, a resumed run that cannot start, and which records of a run
folder's metrics.jsonl belong to a launch."""
import os
import time

import pytest

from benchmarks.ddp import runs as ddp_runs
from benchmarks.ddp.report import verdicts
from opentad.cores.run_log import METRICS_FILE, append_record


def test_run_plan_resumes_the_qlora_run_from_its_second_to_last_epoch(tmp_path, load_tool):
    parse_args = load_tool("benchmark_ddp")["parse_args"]
    args = parse_args(["--data-dir", "d", "--out", str(tmp_path), "--s-epochs", "5"])
    runs = ddp_runs.plan_runs(args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    assert [r["name"] for r in runs] == ["tiny_qlora_x2", "s_qlora_x2", "s_qlora_resume_x2", "s_adapter_x2",
                                         "s_adapter_x1", "s_qlora_x1"]
    assert [r["procs"] for r in runs] == [2, 2, 2, 2, 1, 1]
    resume = ddp_runs.command(runs[2], args)
    at = resume.index("--resume")
    assert resume[at + 1] == os.path.join(str(tmp_path), "work", "s_qlora", "gpu2_id0", "checkpoint", "epoch_3.pth")
    assert resume[resume.index("--id") + 1] == "1"  # its own folder, gpu2_id1
    assert "--disable_deterministic" in resume and f"work_dir={tmp_path}/work/s_qlora" in resume
    picked = ddp_runs.plan_runs(parse_args(["--data-dir", "d", "--out", "o", "--runs", "s_qlora_x1"]),
                               {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    assert [r["name"] for r in picked] == ["s_qlora_x1"]
    with pytest.raises(ValueError, match=r"unknown run\(s\) \['s_qlora_x3'\]"):
        ddp_runs.plan_runs(parse_args(["--data-dir", "d", "--out", "o", "--runs", "s_qlora_x3"]), {
            k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})


def test_cfg_options_reach_every_run_after_the_work_dir(capsys, load_tool):
    parse_args = load_tool("benchmark_ddp")["parse_args"]
    key = "model.backbone.data_preprocessor.augment_chunk_frames=128"
    args = parse_args(["--data-dir", "d", "--out", "o", "--cfg-options", key, "solver.train.num_workers=2"])
    for run in ddp_runs.plan_runs(args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")}):
        cmd = ddp_runs.command(run, args)
        options = cmd[cmd.index("--cfg-options") + 1:]
        assert options[0].startswith("work_dir=") and options[-2:] == [key, "solver.train.num_workers=2"]
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "d", "--out", "o", "--cfg-options", "no_equals_sign"])
    assert "expected KEY=VALUE, got ['no_equals_sign']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "d", "--out", "o", "--cfg-options", "workflow.end_epoch=9"])
    assert "['workflow.end_epoch=9'] set by the tool per run" in capsys.readouterr().err


def test_resume_without_its_checkpoint_is_not_started_and_says_why(tmp_path, load_tool):
    parse_args = load_tool("benchmark_ddp")["parse_args"]
    args = parse_args(["--data-dir", "d", "--out", str(tmp_path), "--s-epochs", "2",
                               "--runs", "s_qlora_x2,s_qlora_resume_x2"])
    original, resume = ddp_runs.plan_runs(args, {k: f"{k}.py" for k in ("tiny_qlora", "s_qlora", "s_adapter")})
    path = os.path.join(str(tmp_path), "work", "s_qlora", "gpu2_id0", "checkpoint", "epoch_0.pth")
    assert resume["resume_epoch"] == 0 and ddp_runs.resume_checkpoint(resume) == path
    assert ddp_runs.missing_input(original, []) is None
    assert path in ddp_runs.missing_input(resume, [])  # a fresh machine: nothing to resume yet
    assert "s_qlora_x2 ended with exit 1" in ddp_runs.missing_input(resume, [dict(name="s_qlora_x2", rc=1)])
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    assert ddp_runs.missing_input(resume, []) is None
    record = ddp_runs.not_started(resume, "no checkpoint")
    assert record["rc"] is None and record["resume_of"] == "s_qlora_x2"
    verdict = verdicts([record])[0]
    assert verdict == ("s_qlora_resume_x2: exit code 0", False, "not started: no checkpoint")


def test_a_launch_reads_its_own_records_not_an_earlier_launchs(tmp_path):
    run = dict(work_dir=str(tmp_path), procs=2, id=1)
    folder = tmp_path / "gpu2_id1"
    folder.mkdir()
    path = str(folder / METRICS_FILE)
    append_record(path, "run", dict(world_size=2))  # an earlier launch into the same folder
    append_record(path, "throughput", dict(epoch=0))
    run["began"] = time.time() + 1  # this launch began after those records were written
    assert ddp_runs.launch_records(run) == []  # it wrote nothing (yet): not the earlier launch's records
    time.sleep(max(0.0, run["began"] - time.time()))
    append_record(path, "run", dict(world_size=2))
    append_record(path, "throughput", dict(epoch=1))
    assert [(r["event"], r.get("epoch")) for r in ddp_runs.launch_records(run)] == [("run", None),
                                                                          ("throughput", 1)]
    assert ddp_runs.launch_records(dict(run, id=0)) == []  # another folder: no file
