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
    assert "| tiny | 32 | adapter |" in out and "| size | frames | mode |" in out


def test_memory_modes_tiny_cpu(capsys):
    """The memory modes count the same trainables as their float counterparts; upstream checkpointing is applied."""
    tool = runpy.run_path(os.path.join(ROOT, "tools", "benchmark_backbone.py"))
    args = ["--sizes", "tiny", "--frames", "32", "--img-size", "32", "--steps", "1", "--warmup", "0", "--device", "cpu",
            "--modes", "upstream,adapter,adapter_bf16,adapter_offload,qlora_both,qlora_offload"]
    rows = {r["mode"]: r for r in tool["main"](args)}
    # seeded weights and frames: same arithmetic, same losses (offloading is a no-op on the CPU)
    assert rows["adapter_bf16"]["losses"] == rows["adapter_offload"]["losses"]
    assert len(rows["adapter"]["losses"]) == 1 and all(v == v for r in rows.values() for v in r["losses"])
    assert rows["adapter_offload"]["trainable"] == rows["adapter"]["trainable"] == rows["upstream"]["trainable"]
    assert rows["qlora_offload"]["trainable"] == rows["qlora_both"]["trainable"] > rows["adapter"]["trainable"]
    assert rows["adapter_offload"]["amp"] == "bf16" and rows["adapter"]["amp"] == "none"
    wrapper = tool["build"](tool["MODES"]["upstream"]("tiny", _args(tool, adapter_start=1)), tool["BACKBONES"])
    tool["upstream_checkpointing"](wrapper)
    # upstream checkpoints only blocks whose input requires grad: after the first adapter (block 1)
    assert [b.with_cp for b in wrapper.model.backbone.blocks] == [False, False]
    wrapper = tool["build"](tool["MODES"]["upstream"]("s", _args(tool, adapter_start=4)), tool["BACKBONES"])
    tool["upstream_checkpointing"](wrapper)
    assert [b.with_cp for b in wrapper.model.backbone.blocks] == [False] * 5 + [True] * 7
    assert not any(b.mlp.chunked for b in wrapper.model.backbone.blocks)


def _args(tool, **kw):
    import argparse

    base = dict(frames=32, img_size=32, adapter_start=0)
    base.update(kw)
    return argparse.Namespace(**base)
