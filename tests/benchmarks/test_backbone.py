"""benchmarks.backbone (through tools/benchmark_backbone.py's options) runs on the CPU with tiny settings and
counts what trains per mode; benchmarks.backbone_modes' upstream checkpointing."""
import argparse

from benchmarks.backbone_modes import MODES, upstream_checkpointing
from opentad.models.bricks.vit import FFN
from opentad.registry import BACKBONES, build


def test_benchmark_tiny_cpu_rows(capsys, load_tool):
    tool = load_tool("benchmark_backbone")
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


def test_memory_modes_tiny_cpu(capsys, load_tool):
    """The memory modes count the same trainables as their float counterparts; upstream checkpointing is applied."""
    tool = load_tool("benchmark_backbone")
    args = ["--sizes", "tiny", "--frames", "32", "--img-size", "32", "--steps", "1", "--warmup", "0", "--device", "cpu",
            "--modes", "upstream,adapter,adapter_bf16,adapter_offload,qlora_both,qlora_offload"]
    rows = {r["mode"]: r for r in tool["main"](args)}
    # seeded weights and frames: same arithmetic, same losses (offloading is a no-op on the CPU)
    assert rows["adapter_bf16"]["losses"] == rows["adapter_offload"]["losses"]
    assert len(rows["adapter"]["losses"]) == 1 and all(v == v for r in rows.values() for v in r["losses"])
    assert rows["adapter_offload"]["trainable"] == rows["adapter"]["trainable"] == rows["upstream"]["trainable"]
    assert rows["qlora_offload"]["trainable"] == rows["qlora_both"]["trainable"] > rows["adapter"]["trainable"]
    assert rows["adapter_offload"]["amp"] == "bf16" and rows["adapter"]["amp"] == "none"
    wrapper = build(MODES["upstream"]("s", _args(adapter_start=4)), BACKBONES)
    upstream_checkpointing(wrapper)
    # upstream checkpoints only blocks whose input requires grad (after the first adapter), with autograd's MLP
    policy = wrapper.model.backbone.memory_policy
    assert policy is wrapper.memory and policy.checkpoint and policy.checkpoint_needs_input_grad
    assert not policy.frozen_mlp and all(type(b.mlp) is FFN for b in wrapper.model.backbone.blocks)


def _args(**kw):
    base = dict(frames=32, img_size=32, adapter_start=0)
    base.update(kw)
    return argparse.Namespace(**base)
