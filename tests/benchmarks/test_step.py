"""benchmarks.step: the ViT FLOP count against hand arithmetic and torch's FlopCounterMode, and the full-step
benchmark (through tools/benchmark_step.py's options) end to end on the CPU with the synthetic tiny config pair."""
import json
import logging

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import step
from benchmarks.step import measure_step, vit_forward_flops
from benchmarks.step_inputs import rows_to_measure
from benchmarks.step_report import format_table
from opentad.models.backbones.vit import VideoViT

PAIR = ",".join(f"configs/adatad/synthetic/e2e_synthetic_vit_tiny_{k}.py" for k in ("adapter", "qlora"))
FAST = ["--device", "cpu", "--steps", "1", "--warmup", "0", "--peak-size", "64", "--configs", PAIR]


def test_vit_forward_flops_by_hand():
    """1 clip of 2 frames at 32 px, patch 16, tubelet 2: n = 1 * 2 * 2 = 4 tokens; C = 8, h = 16, one block.

    embedding 2 * 4 * 8 * (3 * 2 * 16 * 16) = 98304; block: qkv 2*4*8*24 = 1536, QK^T and AV 2 * 2*4*4*8 = 512,
    proj 2*4*8*8 = 512, fc1 and fc2 2 * 2*4*8*16 = 2048, so 4608; total 102912.
    """
    flops = vit_forward_flops(clips=1, num_frames=2, img_size=32, patch_size=16, embed_dims=8, depth=1, mlp_ratio=2)
    assert tuple(flops) == (98304, 4608, 102912)
    assert vit_forward_flops(clips=3, num_frames=2, img_size=32, patch_size=16, embed_dims=8, depth=2,
                             mlp_ratio=2).total == 3 * (98304 + 2 * 4608)


@pytest.mark.parametrize("shape", [
    dict(img_size=64, patch_size=16, embed_dims=64, depth=2, num_heads=4, mlp_ratio=4.0, num_frames=16),
    # the g layout: patch 14 that does not divide the frame, mlp_ratio 48/11, 4 frames per token
    dict(img_size=60, patch_size=14, embed_dims=44, depth=3, num_heads=4, mlp_ratio=48 / 11, num_frames=8,
         tubelet_size=4),
])
def test_vit_forward_flops_match_torch_flop_counter(shape):
    """FlopCounterMode (2 FLOP per multiply-add of conv, mm, addmm, bmm) on this project's ViT is an exact,
    independent count; attention runs the math backend so that its two products are counted as bmm."""
    torch.manual_seed(0)
    vit = VideoViT(**shape, return_feat_map=True).eval()
    clips = 3
    frames = torch.randn(clips, 3, shape["num_frames"], shape["img_size"], shape["img_size"])
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        vit(frames)
    keys = {k: shape[k] for k in ("img_size", "patch_size", "embed_dims", "depth", "mlp_ratio", "num_frames")}
    expected = vit_forward_flops(clips=clips, tubelet_size=shape.get("tubelet_size", 2), **keys).total
    assert counter.get_total_flops() == expected


def test_step_benchmark_end_to_end(tmp_path, capsys, load_tool):
    """AdaTAD, QLoRA and a variant that computes the same forward (backward chunks): finite losses, the variant's
    first-step loss equal to QLoRA's, the JSON file holding the returned rows, the step FLOPs by the convention."""
    tool = load_tool("benchmark_step")
    out = tmp_path / "step.json"
    result = tool["main"]([*FAST, "--forward-only", "--profile", "--json", str(out),
                           "--variants", "chunks2=model.backbone.custom.backward_chunks=2",
                           "budget=model.backbone.custom.memory_budget_gib=8"])
    rows = {r["config"]: r for r in result["rows"]}
    assert list(rows) == ["AdaTAD", "ViT forward", "QLoRA", "chunks2", "budget"]
    # the planner's choice is in the row (8 GiB hold everything: nothing recomputed), none without a budget
    assert rows["budget"]["plan"] == "4 x keep+hold" and rows["QLoRA"]["plan"] is None
    assert rows["budget"]["loss"] == rows["QLoRA"]["loss"] and rows["QLoRA"]["warmup_s"] == 0.0  # --warmup 0
    assert all(torch.isfinite(torch.tensor(rows[k]["loss"])) for k in ("AdaTAD", "QLoRA", "chunks2"))
    assert rows["chunks2"]["loss"] == rows["QLoRA"]["loss"] and rows["AdaTAD"]["time_ratio"] == 1.0
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    # the tiny config: 2 videos x 128 frames = 16 clips of 16 frames at 64 px; 4 blocks with adapters, frozen ViT:
    # forward + 1x each block's forward in backward (input gradients only)
    vit = vit_forward_flops(clips=16, num_frames=16, img_size=64, patch_size=16, embed_dims=64, depth=4, mlp_ratio=4)
    assert rows["AdaTAD"]["flops"] == vit.total + 4 * vit.block and rows["ViT forward"]["flops"] == vit.total
    assert rows["AdaTAD"]["mfu"] == rows["AdaTAD"]["flops"] / (rows["AdaTAD"]["step_s"] * result["peak_flops"])
    table = capsys.readouterr().out
    assert "device: CPU" in table and "| custom | chunks2 | 2 x 128 x 64 |" in table
    # --profile: one more step per training row, its operator time mostly matrix products (the ViT's linears)
    assert "| custom | QLoRA |" in table.split("device ms per kind of kernel")[1]
    for name in ("AdaTAD", "QLoRA", "chunks2", "budget"):
        prof = rows[name]["profile"]
        assert prof["ms"]["gemm"] > 0 and sum(prof["ms"].values()) <= prof["wall_ms"] and prof["kernels"] > 0
    assert "profile" not in rows["ViT forward"]


def test_same_seed_same_loss(load_tool):
    """Two builds with the same seed: same weights, frames and targets, so the same first-step loss (exactly)."""
    tool = load_tool("benchmark_step")
    args = tool["parse_args"]([*FAST, "--batch", "1", "--frames", "64"])
    path = PAIR.split(",")[1]
    first, second = (measure_step(path, {}, args, torch.device("cpu")) for _ in range(2))
    assert first["frames"] == 64 and first["loss"] == second["loss"]


def test_common_options_reach_every_row_under_a_variants_own(load_tool):
    """``--common`` binds onto AdaTAD's row too; a variant's own value for the same key wins on its row."""
    tool = load_tool("benchmark_step")
    key = "model.backbone.custom.attention_kernels"
    rows = rows_to_measure(tool["parse_args"]([*FAST, "--common", f"{key}=cudnn",
                                               "--variants", f"mine={key}=torch,model.backbone.custom.backward_chunks=2"]))
    assert [(label, overrides) for _, label, _, overrides in rows] == [
        ("AdaTAD", {key: "cudnn"}), ("QLoRA", {key: "cudnn"}),
        ("mine", {key: "torch", "model.backbone.custom.backward_chunks": 2})]
    with pytest.raises(SystemExit) as exc:
        rows_to_measure(tool["parse_args"]([*FAST, "--common", f"{key}=fastest"]))
    assert "attention_kernels" in str(exc.value.code) and "AdaTAD" in str(exc.value.code)


@pytest.mark.parametrize("variant, named", [
    ("bad=model.backbone.custom.no_such_option=2", "no_such_option"),
    ("bad=model.backbone.backbone.lora_rank=2", "lora_rank"),
    ("bad=", "expected NAME=key=value"),
])
def test_a_variant_that_cannot_bind_is_one_line_naming_it(variant, named, load_tool):
    """Found while the rows are listed, before anything is built or measured."""
    tool = load_tool("benchmark_step")
    with pytest.raises(SystemExit) as exc:
        rows_to_measure(tool["parse_args"]([*FAST, "--variants", variant]))
    message = str(exc.value.code)
    assert named in message and "\n" not in message


def test_a_failing_row_keeps_its_error_and_traceback():
    """The row names the error in the table and keeps the traceback in the JSON (a device log cut short lost
    the one of a failed row once)."""
    from benchmarks.step import _measure

    def build_the_model():
        raise TypeError("'NoneType' object is not callable")

    row = _measure("g", "g fixedc", "fixedc", build_the_model, peak_flops=1.0)
    assert row["error"] == "TypeError: 'NoneType' object is not callable"
    assert "build_the_model" in row["traceback"] and row["traceback"].rstrip().endswith("is not callable")
    assert row["size"] == "g" and row["config"] == "fixedc" and "mfu" not in row
    json.dumps(row)  # the JSON writer takes it


@pytest.mark.parametrize("warmup", [0, 3])
def test_the_timed_steps_peak_starts_after_the_warm_up(warmup):
    """``warm`` (which records the warm-up's peak and resets the counter) runs once, between the warm-up calls and
    the timed ones."""
    calls = []
    step._timed(lambda: calls.append("step"), 2, warmup, torch.device("cpu"), warm=lambda: calls.append("warm"))
    assert calls == ["step"] * warmup + ["warm"] + ["step"] * 2


@pytest.mark.parametrize("logged_at, counted", [(1, 0), (2, 1)])
def test_a_capture_or_plan_during_the_timed_steps_is_counted_and_named(logged_at, counted, load_tool, monkeypatch):
    """A graph captured or a plan chosen after the warm-up means some timed steps were not the steady state (g's
    graphed row re-planned into its timed steps once: 50 GiB reserved); the row counts it and the table says so.
    Here the 2nd call (warm-up) or the 3rd (timed) logs the planner's line."""
    tool = load_tool("benchmark_step")
    args = tool["parse_args"]([*FAST, "--batch", "1", "--frames", "64", "--steps", "2", "--warmup", "2"])
    calls = []
    planner_log = logging.getLogger("opentad.models.memory.budget")

    def one_epoch(batches, **_):
        calls.append(1)
        if len(calls) == logged_at + 1:
            planner_log.info("memory budget 22.00 GiB, input %s: ...", (1, 2))
        return dict(cost=torch.tensor(0.5))

    monkeypatch.setattr(step, "train_one_epoch", one_epoch)
    row = measure_step(PAIR.split(",")[1], {}, args, torch.device("cpu"))
    assert len(calls) == 4 and row["timed_setup_events"] == counted
    row.update(size="s", config="QLoRA", step_s=1.0, mfu=0.1, mem_ratio=None)
    table = format_table(dict(device="CPU", torch="x", cuda=None, peak_size=1, peak_flops=1.0, rows=[row]))
    assert ("s QLoRA: 1 CUDA-graph capture(s) or memory plan(s) during the timed steps" in table) == bool(counted)


def test_memory_lines_list_each_profiled_row():
    """``--profile-memory`` rows print what was alive at their peak and each pool; other rows print nothing."""
    from benchmarks.step_report import _memory_lines

    rows = [dict(size="s", config="AdaTAD"),
            dict(size="s", config="N + g", memory_top=[("opentad/x.py:3 f", 1.5), ("(other)", 0.25)],
                 memory_pools=[("private (1, 2)", 2.0, 0.0), ("default", 1.25, 1.0)])]
    lines = _memory_lines(rows)
    assert lines[1] == "s N + g: alive at the peak of allocated memory (GiB)"
    assert lines[5:] == ["| opentad/x.py:3 f | 1.500 |", "| (other) | 0.250 |",
                         "- pool private (1, 2): 2.000 GiB reserved, 0.000 GiB allocated at the end",
                         "- pool default: 1.250 GiB reserved, 1.000 GiB allocated at the end"]
    assert _memory_lines(rows[:1]) == []


def test_memory_recorded_is_nothing_off_cuda():
    from benchmarks.step_profile import memory_recorded

    with memory_recorded(torch.device("cpu"), True) as found:
        torch.ones(4)
    assert found == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memory_recorded_finds_the_peak_on_cuda():
    """A 64 MiB tensor alive with a 32 MiB one at the peak: both in the top, the allocated-before bytes as one."""
    from benchmarks.step_profile import memory_recorded

    device = torch.device("cuda")
    held = torch.empty(2**20, device=device)  # 4 MiB allocated before
    with memory_recorded(device, True) as found:
        a = torch.empty(2**24, device=device)  # 64 MiB
        b = torch.empty(2**23, device=device)  # 32 MiB: the peak is a + b
        del a, b
        c = torch.empty(2**22, device=device)  # 16 MiB later: below the peak
        del c
    sizes = dict(found["memory_top"])
    before = sizes.pop("(allocated before the step: weights, optimizer state, inputs)")
    assert before * 2**30 >= held.numel() * 4
    assert sorted(sizes.values()) == [32 / 1024, 64 / 1024]
    assert any(pool == "default" and reserved >= 96 / 1024 for pool, reserved, _ in found["memory_pools"])
