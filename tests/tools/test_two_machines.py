"""Two torchrun "machines" on localhost (Gloo, NNODES=2, one process each) train the tiny QLoRA config, then resume.

Machine 0 and machine 1 are two ``tools/dist_train.sh`` processes started with the same MASTER_ADDR and a free
MASTER_PORT and NODE_RANK 0 and 1; the resumed run starts them through ``tools/slurm_train.sh`` (stand-ins for
scontrol and srun, tests/tools/test_multinode_launch.py). Every worker also saves, after training, its trainable
parameters and quantized tensors (a ``sitecustomize`` hook, outside the code under test), so the test compares
the ranks' weights itself, besides reading the runs' ``consistency`` records.

Data: 4 short synthetic videos rendered straight into a frame cache; global batch 2 (one sample a process), so
an epoch is 2 steps. Cost: about 14 CPU-seconds per machine and launch (torchrun and its worker, mostly their
imports: torch, torchvision, bitsandbytes), 2 launches x 2 machines, so about 30 s on 2 idle cores.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from benchmarks.ddp.data import make_tiny_data, write_tiny_config

from tests.tools.test_multinode_launch import clean_env, fake_slurm_bin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")

# imported by every interpreter of the runs (PYTHONPATH); acts in the workers only (RANK set, dump folder given)
DUMP_HOOK = '''
"""Test hook: after Trainer.fit, each rank saves its trainable parameters and quantized tensors (rank{RANK}.pt)."""
import importlib.abc
import importlib.machinery
import os
import sys


def _dump_after_fit(trainer_class):
    fit = trainer_class.fit

    def fit_and_dump(self):
        result = fit(self)
        import torch
        from opentad.models.utils.qlora import quantized_tensors

        model = getattr(self.model, "module", self.model)
        state = dict(trainable={n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
                     quantized={n: t.detach().clone() for n, t in quantized_tensors(model).items()})
        torch.save(state, os.path.join(os.environ["OPENTAD_TEST_DUMP"], "rank%s.pt" % os.environ["RANK"]))
        return result

    trainer_class.fit = fit_and_dump


class _PatchRunner(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "opentad.cores.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _dump_after_fit(module.Trainer)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("OPENTAD_TEST_DUMP") and "RANK" in os.environ:
    sys.meta_path.insert(0, _PatchRunner())
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The data, the config (tiny QLoRA recipe on the cache, global batch 2, one epoch) and the hook folder."""
    folder = tmp_path_factory.mktemp("two_machines")
    data = make_tiny_data(str(folder / "data"), videos=4, short=True)
    config = write_tiny_config(str(folder / "configs"), data, repo=ROOT, epochs=1)
    hook = folder / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(DUMP_HOOK))
    return folder, config


def run_env(folder, dump, **extra):
    dump.mkdir()
    hook = os.pathsep.join(p for p in (str(folder / "hook"), os.environ.get("PYTHONPATH")) if p)
    return clean_env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable, PYTHONPATH=hook,
                     OPENTAD_TEST_DUMP=str(dump), NNODES="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                     **extra)


def start(command, folder, env):
    """``command`` in a process group of its own (so that a hung run can be ended whole), output captured."""
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(processes, timeout=240):
    """Each process's output, once all have ended; a group still running after ``timeout`` s is killed."""
    try:
        return [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:  # e.g. a machine left waiting for the other: torchrun and its worker
            if p.poll() is None:
                os.killpg(p.pid, 9)


def train_by_hand(folder, config, *args):
    """Machines 0 and 1: ``NODE_RANK=R bash tools/dist_train.sh CONFIG 1 ARGS`` at the same time."""
    env = run_env(folder, folder / "dump_a")
    command = ["bash", os.path.join(TOOLS, "dist_train.sh"), config, "1", *args]
    machines = [start(command, folder, dict(env, NODE_RANK=str(rank))) for rank in (0, 1)]
    outputs = finish(machines)
    for rank, (m, out) in enumerate(zip(machines, outputs)):
        assert m.returncode == 0, f"machine {rank}:\n{out[-4000:]}"
    return outputs


def train_through_slurm(folder, config, *args):
    """The same two machines started by tools/slurm_train.sh (NODE_RANK from SLURM_NODEID)."""
    env = run_env(folder, folder / "dump_b", FAKE_SRUN_OUT=str(folder), SLURM_JOB_ID="77", SLURM_JOB_NUM_NODES="2",
                  SLURM_JOB_NODELIST="localhost,localhost")
    env["PATH"] = f"{fake_slurm_bin(folder / 'bin', ['127.0.0.1', '127.0.0.1'])}:{env['PATH']}"
    job = start(["bash", os.path.join(TOOLS, "slurm_train.sh"), config, "1", *args], folder, env)
    [out] = finish([job])
    logs = [(folder / f"task{rank}.out").read_text() + (folder / f"task{rank}.err").read_text() for rank in (0, 1)]
    assert job.returncode == 0, out + "\n".join(log[-4000:] for log in logs)
    return logs


def records(run_dir, event):
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf8") as f:
        return [r for r in map(json.loads, f) if r["event"] == event]


def assert_ranks_equal(dump):
    """Both ranks' trainable parameters and quantized tensors, bit for bit; returns rank 0's."""
    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("trainable", "quantized"):
        assert ranks[0][part].keys() == ranks[1][part].keys() and ranks[0][part], part
        differ = [n for n, t in ranks[0][part].items() if not torch.equal(t, ranks[1][part][n])]
        assert not differ, f"{part} tensors differ between the machines: {differ[:10]}"
    return ranks[0]


@pytest.mark.slow
def test_two_machines_train_with_identical_ranks_and_resume(prepared):
    folder, config = prepared
    work_a, work_b = folder / "work_a", folder / "work_b"
    outputs = train_by_hand(folder, config, "--cfg-options", f"work_dir={work_a}")
    assert "--nnodes=2 --node_rank=1 --master_addr=127.0.0.1" in outputs[1]
    run_a = work_a / "gpu2_id0"
    a = assert_ranks_equal(folder / "dump_a")
    [check_a] = [r for r in records(run_a, "consistency") if r["tag"] == "epoch"]
    assert (check_a["world_size"], check_a["ranks_agree"], check_a["quantized_unchanged"]) == (2, True, True)
    [throughput] = records(run_a, "throughput")
    assert (throughput["iters"], throughput["samples"], throughput["world_size"]) == (2, 4, 2)
    meta = torch.load(run_a / "checkpoint" / "epoch_0.pth", weights_only=True)["meta"]
    assert meta["world_size"] == 2

    train_through_slurm(folder, config, "--resume", str(run_a / "checkpoint" / "epoch_0.pth"),
                        "--cfg-options", f"work_dir={work_b}", "workflow.end_epoch=2")
    run_b = work_b / "gpu2_id0"
    b = assert_ranks_equal(folder / "dump_b")
    checks = {r["tag"]: r for r in records(run_b, "consistency") if r["tag"] in ("resume", "epoch")}
    # right after loading, every rank holds the weights machine 0 saved (the digest run A logged at epoch 0)
    assert checks["resume"]["trainable_digest"] == check_a["trainable_digest"] and checks["resume"]["ranks_agree"]
    assert checks["epoch"]["epoch"] == 1 and checks["epoch"]["ranks_agree"] and checks["epoch"]["quantized_unchanged"]
    assert torch.load(run_b / "checkpoint" / "last.pth", weights_only=True)["epoch"] == 1
    # epoch 1 trained (the weights moved) on the same quantized base
    moved = [n for n, t in b["trainable"].items() if not torch.equal(t, a["trainable"][n])]
    assert len(moved) > len(b["trainable"]) // 2, len(moved)
    assert all(torch.equal(t, a["quantized"][n]) for n, t in b["quantized"].items())
