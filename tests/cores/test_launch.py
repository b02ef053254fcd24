"""Command lines: malformed arguments and bad input end in one line (no stack trace) and a non-zero status."""
import io
import os
import subprocess
import sys

import pytest
import torch

from opentad.cores.distributed import DistEnv
from opentad.cores.launch import RunContext, build_loader, run_cli, train_parser
from opentad.cores.launch import test_parser as make_test_parser
from opentad.cores.runner import test as run_test
from opentad.cores.runner import train as run_train
from opentad.registry import ConfigError
from opentad.utils.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_line(err):
    """The one line on stderr (bitsandbytes' notice about its optional 'kernels' package is DEBUG: not there)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["c.py", "--cfg-options", "workflow.end_epoch"], "'workflow.end_epoch' is not KEY=VALUE"),
        (["c.py", "--resume", "a.pth", "--load-from", "b.pth"], "not allowed with argument --resume"),
        (["c.py", "--seed", "x"], "invalid int value: 'x'"),
    ],
)
def test_malformed_command_line_is_one_line_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        train_parser().parse_args(argv)
    assert info.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert needle in line and "(see --help)" in line


def test_load_from_and_debug_arguments():
    args = train_parser().parse_args(["c.py", "--load-from", "w.pth"])
    assert args.load_from == "w.pth" and args.resume is None and not args.debug
    assert make_test_parser().parse_args(["c.py", "--debug"]).debug


def _bad_files(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are my notes, not a checkpoint\n")
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(4096)}}, buffer)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(buffer.getvalue()[:2000])
    return str(text), str(cut)


def test_bad_config_values_and_files_are_one_line(tiny_data_root, tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tiny_data_root)
    text, cut = _bad_files(tmp_path)
    work = f"work_dir={tmp_path / 'w'}"
    cases = [
        (run_train, [tiny_config, "--cfg-options", work, "model.rpn_head.num_classes=five"],
         "model.rpn_head.num_classes = 'five' (str): expected an int"),
        (run_train, [tiny_config, "--cfg-options", work, "workflow.end_epoch=two"],
         "workflow.end_epoch = 'two' (str): expected an int"),
        (run_train, [tiny_config, "--cfg-options", work, "worflow.end_epoch=1"], "Did you mean 'workflow'"),
        (run_train, [tiny_config, "--resume", text, "--cfg-options", work], f"{text} is not a readable PyTorch file"),
        (run_test, [tiny_config, "--checkpoint", cut, "--cfg-options", work], "truncated"),
        (run_test, [tiny_config, "--checkpoint", text, "--cfg-options", work], "a text file"),
    ]
    for entry, argv, needle in cases:
        assert run_cli(entry, argv, prog="tool.py") == 1, argv
        line = one_line(capsys.readouterr().err)
        assert line.startswith("tool.py: error: ") and needle in line, (argv, line)


@pytest.mark.parametrize("batch, processes, closest", [(1, 2, 2), (3, 2, 4), (5, 4, 4), (0, 2, 2), (-4, 2, 2)])
def test_a_batch_that_does_not_split_over_the_processes_names_its_key(batch, processes, closest):
    """Issue #16 asked for the key: 'batch_size 1 must be ...' did not say which one (train, val or test)."""
    cfg = Config(dict(solver=dict(val=dict(batch_size=batch)), dataset=dict(val=dict(type="NotBuilt"))))
    env = DistEnv(rank=0, world_size=processes, local_rank=0, device=torch.device("cpu"), distributed=False)
    ctx = RunContext(cfg=cfg, env=env, work_dir="unused", seed=0, config_path="c.py")
    with pytest.raises(ConfigError) as info:  # before the dataset is built
        build_loader(ctx, "val")
    assert str(info.value) == (
        f"solver.val.batch_size = {batch} must be a positive multiple of the number of processes, {processes} "
        f"(it is the global batch, split evenly across them); e.g. solver.val.batch_size={closest}")


def test_debug_shows_the_exception(tiny_config, tmp_path):
    with pytest.raises(Exception, match="expected an int"):
        run_cli(run_train, [tiny_config, "--debug", "--cfg-options", f"work_dir={tmp_path}", "workflow.end_epoch=x"])


def test_the_tools_exit_non_zero_with_one_line(tiny_config, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cases = [
        (["tools/train.py", tiny_config, "--cfg-options", "workflow.end_epoch"], 2, "is not KEY=VALUE"),
        (["tools/test.py", tiny_config, "--cfg-options", f"work_dir={tmp_path}", "optimizer.lr=abc"], 1,
         "optimizer.lr = 'abc' (str): expected a number"),
    ]
    # both at once: each spends its time importing torch, one per core
    running = [subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for args, _, _ in cases]
    try:
        for (args, status, needle), process in zip(cases, running):
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == status, stderr
            assert needle in one_line(stderr), (args, stderr)
    finally:  # a failed check leaves no interpreter behind
        for process in running:
            process.kill()
            process.wait()
