"""opentad.cores.run_log: key=value lines round-trip, steady-state throughput, the logged record off CUDA."""

import pytest
import torch

from opentad.cores.run_log import format_line, log_throughput, parse_lines, summarize_throughput


def test_format_then_parse_round_trips_behind_a_log_prefix():
    values = dict(epoch=3, seconds=7.5, loss=0.123456, ok=True, bad=False, peak=[2.5, 3.0], none=None, digest="ab12cd")
    line = format_line("Throughput", values)
    assert line == ("[Throughput]: epoch=3 seconds=7.5 loss=0.123456 ok=True bad=False peak=[2.5,3.0] none=None "
                    "digest=ab12cd")
    text = f"2026-01-01 10:00:00 INFO opentad.x: {line}\nunrelated [Other]: epoch=9\n"
    assert parse_lines(text, "Throughput") == [values]
    assert parse_lines(text, "Missing") == []
    assert all(isinstance(v, float) for v in parse_lines(format_line("T", dict(a=2.0, b=-3.0, c=1e20)), "T")[0].values())


@pytest.mark.parametrize("values", [{"k": "two words"}, {"k": ""}, {"bad key": 1}])
def test_values_that_would_not_parse_back_are_refused(values):
    with pytest.raises(ValueError):
        format_line("T", values)


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


def test_log_throughput_on_cpu_has_no_memory_figures(log_text):
    record = log_throughput(epoch=1, iters=5, samples=10, seconds=4.0, device=torch.device("cpu"), world_size=1,
                            loss=0.5)
    assert record["samples_per_s"] == pytest.approx(2.5) and record["peak_alloc_gib"] is None
    assert parse_lines(log_text(), "Throughput") == [
        dict(record, samples_per_s=2.5, seconds=4.0, loss=0.5)
    ]
