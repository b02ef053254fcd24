"""Untrusted files: a pickle that would run code is refused by every entry point, and runs nothing.

The payload creates a marker file when unpickled. The first test proves the
payload is live (full unpickling does create the marker); every other test
hands the same kind of file to one entry point and requires the refusal and
an absent marker.
"""
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from opentad.utils import safe_load
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Payload:
    """Unpickling this object calls ``open(marker, "w")``: the marker appears if code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    """``(torch.save file, plain pickle, marker)``: both files would create ``marker`` when unpickled."""
    marker = tmp_path / "pwned"
    pth = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": Payload(marker)}, str(pth))
    pkl = tmp_path / "evil.pkl"
    with open(pkl, "wb") as handle:
        pickle.dump([np.ones((3, 2), dtype=np.float32), Payload(marker)], handle)
    return str(pth), str(pkl), marker


def test_the_payload_is_live(evil, tmp_path):
    """Control: full unpickling of these files does run the payload (so the refusals below mean something)."""
    pth, pkl, marker = evil
    torch.load(pth, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with open(pkl, "rb") as handle:
        pickle.load(handle)
    assert marker.exists()


def test_torch_load_refuses_and_names_file_and_opt_in(evil):
    pth, _, marker = evil
    with pytest.raises(UntrustedFileError) as info:
        safe_load.torch_load(pth, what="--resume checkpoint")
    message = str(info.value)
    assert "\n" not in message and pth in message and "--resume checkpoint" in message
    assert info.value.refused in ("io.open", "builtins.open") and info.value.refused in message
    assert "--trust-pickle" in message and "make_weights_only.py" in message
    assert not marker.exists()


def test_pickle_load_refuses(evil):
    _, pkl, marker = evil
    with pytest.raises(UntrustedFileError, match=r"(io|builtins)\.open"):
        safe_load.pickle_load(pkl, what="feature file")
    assert not marker.exists()


def test_pickle_load_reads_arrays_tensors_and_plain_values(tmp_path):
    data = {
        "feats": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f64": np.linspace(0, 1, 5),
        "scalar": np.float32(2.5),
        "tensors": [torch.arange(6.0).reshape(2, 3), torch.zeros(0, 2)],
        "plain": (1, "a", None, [True, 2.5]),
    }
    for protocol in (2, 4, 5):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol))
        back = safe_load.pickle_load(str(path))
        np.testing.assert_array_equal(back["feats"], data["feats"])
        np.testing.assert_array_equal(back["f64"], data["f64"])
        assert back["scalar"] == data["scalar"] and back["plain"] == data["plain"]
        assert all(torch.equal(a, b) for a, b in zip(back["tensors"], data["tensors"]))


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty"),
        (b"hello world, this is not a checkpoint\n", "text file"),
        (b"\x80\x04\x95 not quite a pickle", "plain pickle"),
    ],
)
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError) as info:
        safe_load.torch_load(str(path), what="--checkpoint")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and needle in message and "torch.save" in message


def test_truncated_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "cut.pth"
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(1000)}}, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UnreadableFileError, match="truncated") as info:
        safe_load.torch_load(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_plain_copy_keeps_tensors_and_values_and_lists_what_it_drops():
    import argparse

    obj = {"state_dict": {"w": torch.ones(2)}, "meta": {"args": argparse.Namespace(a=1), "epoch": 3,
                                                       "hist": np.arange(3), "t": (np.float64(0.5), "x")}}
    kept, dropped = safe_load.plain_copy(obj)
    assert torch.equal(kept["state_dict"]["w"], torch.ones(2))
    assert kept["meta"]["epoch"] == 3 and kept["meta"]["t"] == (0.5, "x")
    assert type(kept["meta"]["t"][0]) is float
    assert torch.equal(kept["meta"]["hist"], torch.arange(3))
    assert "args" not in kept["meta"] and dropped == ["meta.args (argparse.Namespace)"]


# ------------------------------------------------------------------ entry points
def test_checkpoint_reader_refuses(evil):
    from opentad.utils.checkpoint import load_checkpoint, load_weights, read_checkpoint

    pth, _, marker = evil
    model = torch.nn.Linear(2, 1)
    for call in (lambda: read_checkpoint(pth), lambda: load_checkpoint(model, pth), lambda: load_weights(model, pth)):
        with pytest.raises(UntrustedFileError):
            call()
    assert not marker.exists()


def test_pretrained_backbone_file_refused(evil):
    from opentad.models.backbones.pretrained import load_pretrained, read_checkpoint

    pth, _, marker = evil
    with pytest.raises(UntrustedFileError, match="pretrained file"):
        read_checkpoint(pth)
    with pytest.raises(UntrustedFileError):
        load_pretrained(torch.nn.Linear(2, 1), pth)
    assert not marker.exists()


def test_pretrained_file_with_training_arguments_loads_without_trust(tmp_path):
    """Official VideoMAE files carry an argparse.Namespace: allowed (it only stores attributes)."""
    import argparse

    from opentad.models.backbones.pretrained import read_checkpoint

    path = tmp_path / "official.pth"
    torch.save({"model": {"blocks.0.w": torch.ones(2)}, "args": argparse.Namespace(lr=1e-3)}, str(path))
    assert torch.equal(read_checkpoint(str(path))["blocks.0.w"], torch.ones(2))


def test_adapter_pretrain_refused(evil):
    from opentad.models.utils.qlora import _read_state_dict

    pth, _, marker = evil
    with pytest.raises(UntrustedFileError, match="adapter_pretrain"):
        _read_state_dict(pth)
    assert not marker.exists()


def test_inference_loader_refuses(evil):
    from opentad.apis.loading import read_model_state

    pth, _, marker = evil
    with pytest.raises(UntrustedFileError):
        read_model_state(pth, use_ema=False)
    assert not marker.exists()


def test_feature_files_refused(evil, tmp_path):
    from opentad.datasets.transforms.features import _read_feats

    pth, pkl, marker = evil
    with pytest.raises(UntrustedFileError):
        _read_feats(pkl, "pkl")
    torch.save({"x": Payload(marker)}, str(tmp_path / "f.pt"))
    with pytest.raises(UntrustedFileError):
        _read_feats(str(tmp_path / "f.pt"), "pt")
    assert not marker.exists()


def test_raw_predictions_refused(evil, tmp_path):
    from opentad.models.detectors.raw_predictions import load_predictions

    _, pkl, marker = evil
    os.replace(pkl, tmp_path / "video_a.pkl")
    with pytest.raises(UntrustedFileError):
        load_predictions([{"video_name": "video_a"}], {"folder": str(tmp_path)})
    assert not marker.exists()


def test_raw_predictions_round_trip(tmp_path):
    from opentad.models.detectors.raw_predictions import load_predictions, save_predictions

    proposals, scores = [torch.rand(4, 2)], [torch.rand(4, 3)]
    save_predictions((proposals, scores), [{"video_name": "v"}], str(tmp_path))
    got = load_predictions([{"video_name": "v"}], {"folder": str(tmp_path)})
    assert torch.equal(got[0][0], proposals[0]) and torch.equal(got[1][0], scores[0])


def _tool(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))


CONVERTERS = ("tools/model_converters/convert_videomae.py", "tools/model_converters/convert_videomaev2.py",
              "tools/model_converters/make_weights_only.py")


def test_converters_refuse_without_trust_pickle(evil, tmp_path, warm_python):
    """Each converter as ``python SCRIPT IN OUT``; one interpreter imports torch and mmengine once and forks a
    child per converter (``tests/warm_python.py``), none of opentad's modules loaded before the script runs."""
    pth, _, marker = evil
    out = tmp_path / "out.pth"
    jobs = [([os.path.join(ROOT, script), pth, str(out)], ROOT) for script in CONVERTERS]
    results = warm_python(jobs, folder=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          preload=("torch", "mmengine"))
    for script, result in zip(CONVERTERS, results):
        assert result.returncode == 1, (script, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "--trust-pickle" in result.stderr and pth in result.stderr
        assert not out.exists() and not marker.exists()


def test_make_weights_only_with_trust_pickle(tmp_path):
    """The opt-in: a trusted legacy file becomes one that loads weights-only with the same tensors."""
    import argparse

    legacy = tmp_path / "legacy.pth"
    torch.save({"state_dict": {"w": torch.arange(4.0)}, "meta": {"args": argparse.Namespace(a=1), "e": 2},
                "odd": {1, 2}}, str(legacy))
    with pytest.raises(UntrustedFileError):
        safe_load.torch_load(str(legacy))
    out = tmp_path / "clean.pth"
    result = _tool("tools/model_converters/make_weights_only.py", str(legacy), str(out), "--trust-pickle")
    assert result.returncode == 0, result.stderr
    assert "meta.args (argparse.Namespace)" in result.stdout and "odd (builtins.set)" in result.stdout
    clean = torch.load(str(out), weights_only=True)
    assert torch.equal(clean["state_dict"]["w"], torch.arange(4.0)) and clean["meta"] == {"e": 2}
