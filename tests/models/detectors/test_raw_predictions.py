"""Raw predictions on disk keep every field of forward_test's result, None fields included (two-stage layouts)."""
import pytest
import torch

from opentad.models.detectors.raw_predictions import load_predictions, save_predictions


def _predictions(seed):
    g = torch.Generator().manual_seed(seed)
    # a two-stage layout: no first-stage proposals, first-stage scores, second-stage proposals and scores
    return (None, [torch.rand(3, generator=g) for _ in range(2)], [torch.rand(3, 2, generator=g) for _ in range(2)],
            [torch.rand(3, 4, generator=g) for _ in range(2)])


METAS = [dict(video_name="a"), dict(video_name="b")]


def test_every_field_round_trips(tmp_path):
    saved = _predictions(0)
    save_predictions(saved, METAS, str(tmp_path))
    loaded = load_predictions(METAS, dict(folder=str(tmp_path)))
    assert len(loaded) == 4 and loaded[0] is None
    for got, want in zip(loaded[1:], saved[1:]):
        assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_fuse_list_averages_each_tensor_field(tmp_path):
    folders = [tmp_path / "x", tmp_path / "y"]
    runs = [_predictions(1), _predictions(2)]
    for folder, run in zip(folders, runs):
        folder.mkdir()
        save_predictions(run, METAS, str(folder))
    fused = load_predictions(METAS, dict(fuse_list=[str(f) for f in folders]))
    assert fused[0] is None
    for field in range(1, 4):
        for i in range(2):
            # (x + y) / 2 in float32: one rounding of the sum and an exact halving; torch.mean of two values likewise
            want = (runs[0][field][i] + runs[1][field][i]) / 2
            assert torch.allclose(fused[field][i], want, rtol=2 * torch.finfo(torch.float32).eps, atol=0)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="a.pkl"):
        load_predictions(METAS, dict(folder=str(tmp_path)))


def test_batch_tensors_and_tuple_groups_come_back_as_the_detector_returned_them(tmp_path):
    """BMN returns batch tensors ``[B, 2, T]``; TSI a tuple of four ``[B, T]`` logits; proposals of differing
    lengths stay a per-sample list."""
    g = torch.Generator().manual_seed(3)
    tem = tuple(torch.randn(2, 8, generator=g) for _ in range(4))
    iou_map = torch.randn(2, 2, 5, 8, generator=g)
    ragged = [torch.randn(3, 2, generator=g), torch.randn(5, 2, generator=g)]
    save_predictions((tem, iou_map, ragged), METAS, str(tmp_path))
    got_tem, got_map, got_ragged = load_predictions(METAS, dict(folder=str(tmp_path)))
    assert isinstance(got_tem, tuple) and all(torch.equal(a, b) for a, b in zip(got_tem, tem))
    assert torch.equal(got_map, iou_map)
    assert isinstance(got_ragged, list) and all(torch.equal(a, b) for a, b in zip(got_ragged, ragged))
