"""opentad.cores.run_log: JSON records round-trip, a killed run's last line, TensorBoard tags, throughput."""
import json
import math

import pytest
import torch
from torch import nn

from opentad.cores.run_log import (
    METRICS_FILE,
    RunMetrics,
    append_record,
    format_line,
    log_throughput,
    parameter_record,
    read_records,
    summarize_throughput,
)


class FakeBoard:
    """Records ``add_scalar`` calls, as a ``SummaryWriter`` receives them."""

    def __init__(self):
        self.calls, self.closed = [], False

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))

    def close(self):
        self.closed = True


def test_records_round_trip_with_their_event_and_types(tmp_path):
    metrics = RunMetrics(str(tmp_path))
    fields = dict(epoch=3, loss=0.123456789, ok=True, peak=[2.5, 3.0], none=None, nan=math.nan, name="a b",
                  parts={"backbone": [1, 2]}, tensor=torch.tensor(0.25), int64=torch.tensor(7))
    written = metrics.write("train", **fields)
    metrics.write("eval", epoch=3, **{"mAP@0.5": 0.5})
    records = read_records(str(tmp_path / METRICS_FILE))
    assert [r["event"] for r in records] == ["train", "eval"] and list(records[0]) == list(written)
    back = records[0]
    assert list(back)[:2] == ["event", "time"] and len(back["time"]) == len("2026-01-01 10:00:00")
    assert {k: back[k] for k in ("epoch", "loss", "ok", "peak", "none", "name", "parts")} == {
        k: fields[k] for k in ("epoch", "loss", "ok", "peak", "none", "name", "parts")}  # floats exact: repr
    assert math.isnan(back["nan"]) and back["tensor"] == 0.25 and back["int64"] == 7
    assert read_records(str(tmp_path / METRICS_FILE), "eval") == [records[1]]
    assert read_records(str(tmp_path / "missing.jsonl")) == []


def test_off_rank_zero_nothing_is_written(tmp_path):
    board = FakeBoard()
    assert RunMetrics(None, tensorboard=board).write("train", step=0, loss=1.0) is None
    assert board.calls == [] and list(tmp_path.iterdir()) == []


def test_a_truncated_last_line_is_skipped_a_broken_middle_line_is_an_error(tmp_path):
    path = str(tmp_path / METRICS_FILE)
    append_record(path, "run", dict(world_size=2))
    with open(path, "a", encoding="utf8") as handle:
        handle.write('{"event": "train", "los')  # the run was killed while writing
    assert [r["event"] for r in read_records(path)] == ["run"]
    with open(path, "a", encoding="utf8") as handle:
        handle.write("\n")
    append_record(path, "eval", {})
    with pytest.raises(ValueError, match=rf"{METRICS_FILE}, line 2: not a JSON record"):
        read_records(path)
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: expected a JSON object, got list"):
        read_records(str(tmp_path / "list.jsonl"))


def test_values_json_cannot_hold_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"train record for .*metrics.jsonl: metrics value <object .*> \(object\)"):
        append_record(str(tmp_path / METRICS_FILE), "train", dict(bad=object()))


def test_tensorboard_gets_the_floats_of_a_stepped_record(tmp_path):
    board = FakeBoard()
    metrics = RunMetrics(str(tmp_path), tensorboard=board)
    metrics.write("train", step=12, epoch=1, iter=2, cost=0.5, lr=[1e-4, 2e-3], step_s=0.25)
    metrics.write("params", trainable=5, total=9)  # no step: the file only
    assert board.calls == [("train/cost", 0.5, 12), ("train/lr/0", 1e-4, 12), ("train/lr/1", 2e-3, 12),
                           ("train/step_s", 0.25, 12)]
    metrics.close()
    assert board.closed and len(read_records(str(tmp_path / METRICS_FILE))) == 2


def test_format_line_is_the_human_readable_line():
    values = dict(epoch=3, seconds=7.5, loss=0.123456789, ok=True, peak=[2.5, 3.0], none=None, big=1e20, two=2.0)
    assert format_line("Throughput", values) == (
        "[Throughput]: epoch=3 seconds=7.5 loss=0.123457 ok=True peak=[2.5,3.0] none=None big=1e+20 two=2.0")


def test_parameter_record_counts_each_part():
    model = nn.Module()
    model.backbone = nn.Linear(3, 4)  # 16 parameters, frozen below
    model.head = nn.Linear(4, 2)  # 10
    model.empty = nn.ReLU()
    model.backbone.requires_grad_(False)
    assert parameter_record(model) == dict(trainable=10, total=26, parts={"backbone": [0, 16], "head": [10, 10]})


def test_summary_skips_the_warm_up_epoch_and_keeps_each_ranks_peak():
    records = [
        dict(epoch=0, iters=10, samples=20, seconds=10.0, peak_alloc_gib=[3.0, 1.0], peak_reserved_gib=[4.0, 2.0]),
        dict(epoch=1, iters=10, samples=20, seconds=2.0, peak_alloc_gib=[2.0, 2.5], peak_reserved_gib=[3.0, 3.0]),
        dict(epoch=2, iters=10, samples=20, seconds=3.0, peak_alloc_gib=[2.0, 2.0], peak_reserved_gib=[3.0, 3.5]),
    ]
    summary = summarize_throughput(records)
    assert summary["epochs"] == 3 and summary["iters"] == 30
    assert summary["samples_per_s"] == pytest.approx(40 / 5.0)
    assert summary["peak_alloc_gib"] == [3.0, 2.5] and summary["peak_reserved_gib"] == [4.0, 3.5]
    assert summarize_throughput(records, skip_first=False)["samples_per_s"] == pytest.approx(60 / 15.0)
    assert summarize_throughput(records[:1])["samples_per_s"] == pytest.approx(2.0)  # nothing else to keep
    assert summarize_throughput([]) == {}


def test_log_throughput_writes_the_line_and_the_record(log_text, tmp_path):
    board = FakeBoard()
    record = log_throughput(epoch=1, iters=5, samples=10, seconds=4.0, device=torch.device("cpu"), world_size=1,
                            loss=0.5, metrics=RunMetrics(str(tmp_path), tensorboard=board))
    assert record["samples_per_s"] == 2.5 and record["peak_alloc_gib"] is None  # 10 / 4 is exact
    assert format_line("Throughput", record) in log_text()
    (written,) = read_records(str(tmp_path / METRICS_FILE), "throughput")
    assert {k: v for k, v in written.items() if k not in ("event", "time")} == record
    assert ("throughput/samples_per_s", 2.5, 1) in board.calls
    assert json.loads((tmp_path / METRICS_FILE).read_text())["event"] == "throughput"
