"""tools/prepare_data/activitynet/check_data.py: exit status, printed summary, block list, dataset prefixes."""
import json
import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TOOL = os.path.join(ROOT, "tools", "prepare_data", "activitynet", "check_data.py")


@pytest.fixture(scope="module")
def main():
    return runpy.run_path(TOOL)["main"]


def write(tmp_path, annotations, files=("v_a",)):
    database = {"a": {"subset": "validation", "duration": 20.0, "annotations": annotations},
                "b": {"subset": "validation", "duration": 30.0, "annotations": []}}
    (tmp_path / "anno.json").write_text(json.dumps({"database": database}))
    (tmp_path / "classes.txt").write_text("Run\nJump\n")
    feats = tmp_path / "feats"
    feats.mkdir()
    for name in files:
        (feats / f"{name}.npy").write_bytes(b"")
    return ["--ann", str(tmp_path / "anno.json"), "--class-map", str(tmp_path / "classes.txt"), "--data", str(feats)]


def test_problems_are_listed_and_fail(tmp_path, main, capsys):
    args = write(tmp_path, [{"label": "Run", "segment": [5.0, 4.0]}, {"label": "Swim", "segment": [1.0, 25.0]}])
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    # ActivityNet's published file: 4,926 validation videos; the features are v_<video>.npy
    assert out[0] == "videos: validation: 2; segments: 2 (the published activitynet file has validation: 4926)"
    assert out[1] == "unusable segments (skipped by the datasets): 1 (a [5.0, 4.0] end <= start)"
    assert out[2].endswith(": 1 (a [1.0, 25.0] duration=20.0)")
    assert out[3] == "unknown labels (the datasets refuse them): 1 ('Swim' in 1 video(s), e.g. a)"
    assert out[5] == "missing files: 1 (b)"


def test_block_list_written_then_usable(tmp_path, main, capsys):
    args = write(tmp_path, [{"label": "Run", "segment": [1.0, 2.0]}])
    assert main(args) == 1  # b has no feature file
    assert main(args + ["--write-block-list"]) == 0
    assert (tmp_path / "feats" / "missing_files.txt").read_text() == "b\n"
    assert "wrote" in capsys.readouterr().out


def test_other_datasets_read_unprefixed_files(tmp_path, main, capsys):
    args = write(tmp_path, [{"label": "Run", "segment": [1.0, 2.0]}], files=("a", "b"))
    assert main(args + ["--dataset", "hacs"]) == 0
    assert main(args) == 1 and "missing files: 2 (a; b)" in capsys.readouterr().out  # ActivityNet wants v_a.npy
    assert main(args + ["--prefix", ""]) == 0


def test_missing_annotation_file_is_one_line(tmp_path, main, capsys):
    assert main(["--ann", str(tmp_path / "none.json")]) == 1
    err = capsys.readouterr().err
    assert "error: Annotation file not found" in err and "none.json" in err
