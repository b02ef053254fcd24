"""``tensors_read``, the CUDA graphs' key of what the blocks hold, against a walk written here: every tensor reachable
from the blocks' modules (parameters, buffers, attributes; through tensors' own attributes, lists, tuples, dicts,
objects' attributes and slots; not into other modules, which are walked as modules), with no depth limit."""
import types

import pytest
import torch
from torch import Tensor, nn

from opentad.models.memory.cuda_graphs import tensors_read
from opentad.models.memory.fp8_matmul import quantize_fp8_weights
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import tiny_qlora_vit


def _reachable(value, found: set, seen: dict) -> None:
    """Add the data address of every tensor reachable from ``value`` to ``found``; ``seen`` keeps each visited
    object (by id, and alive, so that no id is reused during the walk)."""
    if isinstance(value, nn.Module) or isinstance(value, (str, bytes, int, float, bool, type(None), type)):
        return
    if id(value) in seen:
        return
    seen[id(value)] = value
    if isinstance(value, Tensor):
        found.add(value.data_ptr())
        for item in getattr(value, "__dict__", {}).values():
            _reachable(item, found, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reachable(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _reachable(item, found, seen)
    else:
        for item in getattr(value, "__dict__", {}).values():
            _reachable(item, found, seen)
        for name in getattr(type(value), "__slots__", ()):
            _reachable(getattr(value, name, None), found, seen)


def _every_tensor(blocks) -> set:
    found, seen = set(), {}
    plain = set(vars(nn.Module()))
    for block in blocks:
        for module in block.modules():
            values = list(module._parameters.values()) + list(module._buffers.values())
            values += [v for k, v in vars(module).items() if k not in plain]
            for value in values:
                _reachable(value, found, seen)
    return found


def test_the_key_holds_every_tensor_the_blocks_reach():
    """The tiny QLoRA ViT with fp8 "all" weights made (4-bit weights with their nested quantization states, fp8
    caches with slots, LoRA) and a held list and namespace of tensors: the key's addresses are exactly those
    reachable (at four levels the key missed each weight's ``quant_state.state2`` tensors)."""
    pytest.importorskip("bitsandbytes")
    model = tiny_qlora_vit()
    apply_memory_policy(model, MemoryPolicy(frozen_dtype=torch.bfloat16, frozen_fp8="all"))
    quantize_fp8_weights(model, torch.device("cpu"))
    model.blocks[0].held = [torch.ones(2), (torch.zeros(3), {"k": torch.ones(1)})]
    model.blocks[1].mlp.note = types.SimpleNamespace(size=torch.Size([2, 3]), dtype=torch.float32, t=torch.ones(4))
    blocks = list(model.blocks)
    key = tensors_read(blocks)
    assert set(key) == _every_tensor(blocks) and len(key) >= len(set(key)) > 100
    model.blocks[1].mlp.note.t = torch.ones(4)  # a tensor replaced inside an object: the key changes
    assert tensors_read(blocks) != key
