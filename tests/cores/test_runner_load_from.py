"""Fine-tuning from a checkpoint (--load-from / load_from=), and --resume of a file that holds weights only."""
import glob
import os

import pytest
import torch

from opentad.cores import runner
from opentad.cores.launch import run_cli
from opentad.cores.trainer import Trainer
from opentad.utils.checkpoint import CheckpointError, strip_prefix


def train(cfg, work_dir, *extra, end_epoch=1, ema=True):
    opts = [f"work_dir={work_dir}", f"workflow.end_epoch={end_epoch}", f"solver.ema={ema}",
            "workflow.val_eval_interval=-1"]
    return runner.train([cfg, "--seed", "3", *extra, "--cfg-options", *opts])


@pytest.fixture
def trained(tiny_data_root, tiny_config, tmp_path_factory, monkeypatch):
    """A run trained one epoch: its ``last.pth`` (full state) and ``best.pth`` (weights only)."""
    work = tmp_path_factory.mktemp("source")
    monkeypatch.chdir(tiny_data_root)
    train(tiny_config, work)
    return work / "gpu1_id0" / "checkpoint"


@pytest.fixture
def started(monkeypatch):
    """Replaces ``Trainer.fit``: the run returns the trainer as it is when training would begin."""
    monkeypatch.setattr(Trainer, "fit", lambda self: self)


def weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("ema", [True, False])
def test_load_from_starts_a_new_run_from_the_weights(trained, tiny_data_root, tiny_config, tmp_path, monkeypatch,
                                                     started, ema):
    monkeypatch.chdir(tiny_data_root)
    source = torch.load(trained / "last.pth", weights_only=True)
    expected = strip_prefix(source["state_dict_ema" if ema else "state_dict"])
    trainer = train(tiny_config, tmp_path / "ft", "--load-from", str(trained / "last.pth"), ema=ema)
    got = weights(trainer.model)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    assert trainer.start_epoch == 0 and trainer.optimizer.state_dict()["state"] == {}
    if ema:  # the average starts from the loaded weights
        averaged = weights(trainer.model_ema.module)
        assert all(torch.equal(averaged[k], expected[k]) for k in expected)


def run_log(run_dir):
    """The run folder's log files, oldest first, as one text."""
    paths = sorted(glob.glob(str(run_dir / "gpu1_id0" / "train_*.log")), key=os.path.getmtime)
    return "".join(open(p).read() for p in paths)


def test_load_from_config_key(trained, tiny_data_root, tiny_config, tmp_path, monkeypatch, started):
    monkeypatch.chdir(tiny_data_root)
    best = str(trained / "best.pth")
    trainer = runner.train([tiny_config, "--cfg-options", f"work_dir={tmp_path / 'ft'}", f"load_from={best}",
                            "solver.ema=False"])
    expected = strip_prefix(torch.load(best, weights_only=True)["state_dict"])
    got = weights(trainer.model)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    log = run_log(tmp_path / "ft")
    assert f"Initialised the model from state_dict of {best}" in log
    assert "0 missing, 0 unexpected, 0 shape-mismatched keys" in log


def test_fine_tuning_actually_trains(trained, tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)
    train(tiny_config, tmp_path / "ft", "--load-from", str(trained / "best.pth"))
    tuned = torch.load(tmp_path / "ft" / "gpu1_id0" / "checkpoint" / "last.pth", weights_only=True)
    start = torch.load(trained / "best.pth", weights_only=True)
    key = "module.rpn_head.cls_head.weight"
    assert tuned["epoch"] == 0 and not torch.equal(tuned["state_dict"][key], start["state_dict"][key])


def test_resume_of_weights_only_file_points_to_load_from(trained, tiny_data_root, tiny_config, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.chdir(tiny_data_root)
    best = str(trained / "best.pth")
    with pytest.raises(CheckpointError) as info:
        train(tiny_config, tmp_path / "r", "--resume", best)
    message = str(info.value)
    assert "\n" not in message and f"--load-from {best}" in message and "optimizer" in message
    argv = [tiny_config, "--resume", best, "--cfg-options", f"work_dir={tmp_path / 'r2'}"]
    assert run_cli(runner.train, argv, prog="train.py") == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train.py")]
    assert len(err) == 1 and "--load-from" in err[0]


def test_resume_wins_over_the_config_load_from(trained, tiny_data_root, tiny_config, tmp_path, monkeypatch, started):
    monkeypatch.chdir(tiny_data_root)
    trainer = runner.train([tiny_config, "--resume", str(trained / "last.pth"), "--cfg-options",
                            f"work_dir={trained.parent.parent}", f"load_from={trained / 'best.pth'}",
                            "workflow.end_epoch=2", "solver.ema=True", "workflow.val_eval_interval=-1"])
    assert trainer.start_epoch == 1
    assert "is not used: --resume restores the run's own weights" in run_log(trained.parent.parent)
