"""benchmarks.ddp.report: records from a run's metrics, the verdicts (a failing check is a FAIL), the Markdown
tables, the failing rank's traceback from the console log."""
import pytest

from benchmarks.ddp.report import read_run, summary_markdown, verdicts


def _records(epochs, *, procs=2, digests=None, agree=True, unchanged=True, qdigest="q1", build="q1", resume=None,
             seconds=2.0, samples=8, peaks=(2.0, 2.5)):
    """A launch's ``metrics.jsonl`` records, as the runner writes them."""
    records = [dict(event="run", mode="train", world_size=procs)]
    if build:
        records.append(dict(event="consistency", tag="build", quantized_layers=4, quantized_digest=build))
    if resume is not None:
        records.append(dict(
            event="consistency", tag="resume", epoch=resume[0], world_size=procs, ranks_agree=True,
            quantized_unchanged=True, trainable_tensors=3, trainable_values=30, trainable_digest=resume[1],
            quantized_layers=4, quantized_digest=qdigest))
    for e in epochs:
        records.append(dict(event="train", epoch=e, iter=0, cost=9.0))  # other events are left alone
        records.append(dict(
            event="throughput", epoch=e, iters=4, samples=samples, seconds=seconds * (3 if e == epochs[0] else 1),
            samples_per_s=0.0, world_size=procs, loss=1.0 / (e + 1), peak_alloc_gib=list(peaks[:procs]),
            peak_reserved_gib=None))
        records.append(dict(
            event="consistency", tag="epoch", epoch=e, world_size=procs, ranks_agree=agree or e == epochs[0],
            quantized_unchanged=unchanged, trainable_tensors=3, trainable_values=30,
            trainable_digest=(digests or {}).get(e, f"d{e}"), quantized_layers=4, quantized_digest=qdigest))
    return records


def test_record_has_steady_throughput_peaks_and_digests():
    record = read_run(_records([0, 1, 2]), "", name="a_x2", label="a", procs=2, rc=0, wall_s=10.0)
    assert record["epochs"] == 3 and record["iters"] == 12
    assert record["samples_per_s"] == 16 / 4.0  # epochs 1 and 2: 8 samples in 2 s each
    assert record["peak_alloc_gib"] == [2.0, 2.5] and record["peak_reserved_gib"] is None
    assert record["trainable_digests"] == {0: "d0", 1: "d1", 2: "d2"} and record["checks"] == 3
    assert record["ranks_agree"] is True and record["quantized_unchanged"] is True
    assert record["quantized_digests"] == ["q1"] and record["losses"][2] == pytest.approx(1.0 / 3)
    assert all(ok for _, ok, _ in verdicts([record]))


def test_failures_become_fail_verdicts():
    drift = read_run(_records([0, 1], agree=False), "", name="drift", label="a", procs=2, rc=0, wall_s=1.0)
    moved = read_run(_records([0, 1], qdigest="q2"), "", name="moved", label="a", procs=2, rc=0, wall_s=1.0)
    crashed = read_run([], "Traceback ...\nRuntimeError: boom\n", name="crashed", label="a", procs=2, rc=1,
                       wall_s=1.0)
    failed = {check for check, ok, _ in verdicts([drift, moved, crashed]) if not ok}
    assert failed == {
        "drift: trainable weights identical on all ranks",
        "moved: quantized bytes unchanged since build",  # build q1, epochs q2
        "crashed: exit code 0",
        "crashed: trainable weights identical on all ranks",  # no check ran at all
    }
    text = summary_markdown([drift, moved, crashed], title="T")
    assert "FAIL: drift: trainable weights identical on all ranks" in text
    assert "RuntimeError: boom" in text  # the failed run's last lines


def test_resume_compares_loaded_weights_with_the_original_epoch():
    original = read_run(_records([0, 1, 2]), "", name="s_x2", label="s", procs=2, rc=0, wall_s=1.0)
    good = read_run(_records([2], resume=(1, "d1"), digests={2: "d2"}), "", name="r_ok", label="s", procs=2, rc=0,
                    wall_s=1.0, resume_of="s_x2", resume_epoch=1)
    bad = read_run(_records([2], resume=(1, "zz"), digests={2: "other"}), "", name="r_bad", label="s", procs=2,
                   rc=0, wall_s=1.0, resume_of="s_x2", resume_epoch=1)
    results = {check: ok for check, ok, _ in verdicts([original, good, bad])}
    assert results["r_ok: resumed weights equal s_x2's at epoch 1"] is True
    assert results["r_bad: resumed weights equal s_x2's at epoch 1"] is False
    text = summary_markdown([original, good, bad], title="T")
    assert "| r_ok | s_x2 | 1 | yes (d1) | yes | 0.3333 / 0.3333 | yes |" in text
    assert "| r_bad | s_x2 | 1 | **NO** (zz) | yes | 0.3333 / 0.3333 | no |" in text


def test_one_against_two_gpus_gives_the_speed_up():
    one = read_run(_records([0, 1], procs=1, seconds=4.0, peaks=(3.0,)), "", name="s_x1", label="s", procs=1, rc=0,
                   wall_s=1.0)
    two = read_run(_records([0, 1], procs=2, seconds=2.5), "", name="s_x2", label="s", procs=2, rc=0, wall_s=1.0)
    text = summary_markdown([two, one], title="T")
    # 1 GPU: 8 samples / 4 s = 2.00; 2 GPUs: 8 / 2.5 = 3.20; speed-up 1.60
    assert "| s | 2 | 2.00 | 3.20 | 1.60 | 3.00 | 2.00 / 2.50 |" in text


def _torchrun_failure(worker_lines):
    banner = ["Traceback (most recent call last):", '  File "torch/distributed/run.py", line 1, in run',
              "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", "=" * 60,
              "/work/tools/train.py FAILED", "-" * 60, "Failures:", "[1]:", "  rank      : 1 (local_rank: 1)",
              "  exitcode  : -15", "-" * 60, "Root Cause (first observed failure):", "[0]:",
              "  rank      : 0 (local_rank: 0)", "  exitcode  : 1 (pid: 7)", "  error_file: <N/A>",
              "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html", "=" * 60]
    return "\n".join(["2026-01-01 INFO opentad: Resumed from x.pth"] + worker_lines + banner) + "\n"


def test_the_failing_ranks_traceback_reaches_the_summary_past_torchruns_banner():
    frames = [f'  File "opentad/m{i}.py", line {i}, in f{i}' for i in range(12)]
    error = "TypeError: can't convert cuda:0 device type tensor to numpy."
    worker = [f"[rank0]: {line}" for line in ["Traceback (most recent call last):", *frames, error]]
    record = read_run([], _torchrun_failure(worker), name="r", label="s", procs=2, rc=1, wall_s=28.0)
    assert not any(error in line for line in record["tail"])  # the banner alone fills the last lines
    assert record["error"][0] == "[rank0]: Traceback (most recent call last):"
    assert record["error"][-1] == f"[rank0]: {error}" and record["error"][-2] == f"[rank0]: {frames[-1]}"
    text = summary_markdown([record], title="T")
    assert f"[rank0]: {error}" in text and "Root Cause (first observed failure):" in text
    # the runner's logged traceback (no prefix) ends at its exception line; a long one keeps its last lines
    deep = [f'  File "opentad/d{i}.py", line {i}, in g{i}' for i in range(20)]
    logged = ["2026-01-01 ERROR opentad.cores.runner: Training failed on rank 0 of 2",
              "Traceback (most recent call last):", *deep, "ValueError: bad base"]
    lines = read_run([], _torchrun_failure(logged), name="r", label="s", procs=2, rc=1, wall_s=1.0)["error"]
    assert lines == ["Traceback (most recent call last):", "...", *deep[-15:], "ValueError: bad base"]  # 16 kept
    assert read_run([], "no traceback here\n", name="ok", label="s", procs=2, rc=0, wall_s=1.0)["error"] == []
