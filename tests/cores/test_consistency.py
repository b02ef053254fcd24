"""opentad.cores.consistency: byte fingerprints against a numpy reference, the quantized-bytes check,
and two Gloo processes where one rank's weights are perturbed and the check names exactly that tensor."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from opentad.cores import consistency
from opentad.cores.consistency import ConsistencyChecker, ConsistencyError, differing_names, tensor_fingerprints
from opentad.cores.run_log import METRICS_FILE, RunMetrics, read_records


def reference_fingerprint(t):
    """Independent: numpy bytes, Python-int sums."""
    raw = np.frombuffer(t.detach().contiguous().numpy().tobytes(), dtype=np.uint8).astype(np.int64)
    weights = np.arange(raw.size, dtype=np.int64) % 65521 + 1
    return (str(t.dtype).replace("torch.", ""), tuple(t.shape), int(raw.sum()), int((raw * weights).sum()))


@pytest.mark.parametrize("chunk", [1 << 24, 7])
def test_fingerprints_match_numpy_reference(monkeypatch, chunk):
    monkeypatch.setattr(consistency, "_CHUNK_BYTES", chunk)  # 7 bytes: every tensor spans several chunks
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(5, 3, generator=g),
        "f16": torch.randn(11, generator=g).half(),
        "i64": torch.randint(-(2**40), 2**40, (4,), generator=g),
        "u8": torch.randint(0, 256, (70000,), generator=g, dtype=torch.uint8),  # positions past 65521
        "bool": torch.rand(9, generator=g) > 0.5,
        "scalar": torch.tensor(3.25),
        "strided": torch.randn(4, 6, generator=g)[:, ::2],
    }
    got = tensor_fingerprints(tensors)
    for name, t in tensors.items():
        assert got[name] == reference_fingerprint(t), name


def test_one_changed_byte_or_a_swap_changes_the_fingerprint():
    t = torch.randn(100, generator=torch.Generator().manual_seed(1))
    base = tensor_fingerprints({"t": t})["t"]
    bumped = t.clone()
    bumped[37] = torch.nextafter(bumped[37], torch.tensor(float("inf")))  # one ulp
    swapped = t.clone()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert tensor_fingerprints({"t": bumped})["t"] != base
    assert tensor_fingerprints({"t": swapped})["t"] != base


def test_differing_names_lists_ranks_that_differ_or_lack_a_tensor():
    a = {"x": ("float32", (1,), 1, 1), "y": ("float32", (1,), 2, 2)}
    b = {"x": ("float32", (1,), 1, 1), "y": ("float32", (1,), 2, 3), "z": ("float32", (1,), 0, 0)}
    assert differing_names([a, a]) == {}
    assert differing_names([a, b, a]) == {"y": [1], "z": [0, 1]}  # rank 0 lacks z, rank 1 has it
    assert differing_names([b, a]) == {"y": [1], "z": [1]}


def _quantized_model():
    from opentad.models.bricks.quant import QuantSpec, quantize_linear

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))
    model[0] = quantize_linear(model[0], QuantSpec(bits=4))
    return model


def test_quantized_bytes_changed_are_named_and_rebase_accepts_loaded_bytes(log_text, tmp_path):
    pytest.importorskip("bitsandbytes")
    model = _quantized_model()
    checker = ConsistencyChecker(model, metrics=RunMetrics(str(tmp_path)))
    report = checker.check(model, epoch=0)
    assert report.ok and report.quantized_layers == 1 and report.trainable_tensors == 2  # model[1] weight, bias
    assert report.trainable_values == 64 * 8 + 8
    records = read_records(str(tmp_path / METRICS_FILE), "consistency")
    assert [r["tag"] for r in records] == ["build", "epoch"] and log_text().count("[Consistency]: tag=") == 2
    assert records[1]["ranks_agree"] is True and records[1]["quantized_unchanged"] is True
    assert records[0]["quantized_digest"] == records[1]["quantized_digest"]

    with torch.no_grad():
        model[0].weight.data[5] ^= 1  # one bit of one packed 4-bit pair
        model[1].weight.add_(1.0)  # training moves trainable weights: allowed
    expected = r"1 quantized tensor\(s\) changed during training: 0\.weight \(ranks \[0\]\)"
    with pytest.raises(ConsistencyError, match=expected):
        checker.check(model, epoch=1)
    assert checker.rebase(model, epoch=1).ok  # e.g. bytes loaded from a checkpoint become the reference


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different weights per rank: DDP's construction broadcasts rank 0's
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].weight.requires_grad_(False)  # frozen: not compared
    ddp = nn.parallel.DistributedDataParallel(model)
    checker = ConsistencyChecker(ddp)
    report = checker.check(ddp, epoch=3)
    result = {"ok": report.ok, "digest": report.trainable_digest, "world": report.world_size}
    with torch.no_grad():  # then rank 1 drifts, as a bug would make it
        model[2].bias[1] += 1e-6 * rank
        model[0].weight[0, 0] += 1.0 * rank
    try:
        checker.check(ddp, epoch=4)
    except ConsistencyError as exc:
        result["error"] = str(exc)
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()  # neither rank tears Gloo down while the other still talks to it (an abort otherwise)
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_agree_then_the_perturbed_tensor_is_named(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(r["ok"] and r["world"] == 2 for r in results)
    assert results[0]["digest"] == results[1]["digest"]
    for r in results:  # every rank reaches the same verdict, so none waits in a collective
        assert "1 tensor(s) differ between ranks: 2.bias (ranks [1])" in r["error"]
        assert "0.weight" not in r["error"] and "2.weight" not in r["error"]
