"""setup_logger: rank 0 prints everything in the parseable format; other ranks only warnings, tagged."""
import logging

from opentad.utils.logger import setup_logger


def test_rank_zero_format_and_other_ranks_tagged(capsys, monkeypatch, tmp_path):
    root = logging.getLogger("opentad")
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test, with propagate
    monkeypatch.setattr(root, "propagate", root.propagate)
    monkeypatch.setenv("RANK", "0")
    log = setup_logger(str(tmp_path / "run.log")).getChild("test")
    log.info("hello %d", 1)
    out = capsys.readouterr().out
    assert out.rstrip().endswith("INFO opentad.test: hello 1")  # unchanged for the log parsers
    monkeypatch.setenv("RANK", "1")
    log.info("hidden")
    log.warning("careful")
    out = capsys.readouterr().out
    assert "hidden" not in out
    assert out.rstrip().endswith("WARNING [rank 1] opentad.test: careful")
    assert (tmp_path / "run.log").read_text().splitlines()[0].endswith("INFO opentad.test: hello 1")
    setup_logger(str(tmp_path / "other.log"))  # on rank 1 no file is written
    assert not (tmp_path / "other.log").exists()
