"""Snippet feature extraction (opentad.apis.features) against a hand-built reference, and into a feature config."""
import os

import av
import numpy as np
import pytest
import torch

from opentad.apis import FeatureExtractor, InferenceError, extract_features, list_videos
from opentad.apis.features import snippet_clip_indices
from opentad.datasets import build_dataset
from opentad.transforms import Resize
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEATURE_DATASET = os.path.join(ROOT, "configs", "_base_", "datasets", "synthetic", "features_stride4_pad.py")


def test_clip_indices_match_a_loop():
    frames, stride, clip, interval = 23, 4, 6, 2
    got = snippet_clip_indices(frames, snippet_stride=stride, clip_len=clip, frame_interval=interval)
    expected = []
    for t in range(frames // stride):
        centre = t * stride + stride // 2
        expected.append([min(max(centre + interval * k, 0), frames - 1) for k in range(-(clip // 2), clip - clip // 2)])
    assert got.tolist() == expected


def decode_all(path):
    """Every frame as uint8 [N, 3, H, W] (RGB), read with PyAV directly."""
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def extractor(e2e_config, e2e_checkpoint):
    return FeatureExtractor(e2e_config, e2e_checkpoint, device="cpu", snippet_stride=4, batch_size=7)


def test_rows_match_a_reference_computation(tiny_data, extractor, tmp_path):
    name = tiny_data.test_videos[0]
    video = os.path.join(tiny_data.videos, f"{name}.mp4")
    report = extract_features(extractor, [video], str(tmp_path), show_progress=False)
    feats = np.load(report.written[0])
    frames = decode_all(video)
    assert feats.dtype == np.float32 and feats.shape == (len(frames) // 4, 64)
    # the config resizes to 64x64 (its Resize transform: torchvision's uint8 kernel) and normalises with
    # ImageNet mean/std; clips, normalisation and pooling are rebuilt here by hand
    resize = Resize(scale=(64, 64), keep_ratio=False)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1, 1)
    vit = extractor.wrapper.model.backbone
    for t in (0, 7, len(feats) - 1):
        idx = [min(max(4 * t + 2 + k, 0), len(frames) - 1) for k in range(-8, 8)]
        clip = resize(dict(imgs=frames[idx]))["imgs"].float()
        clip = (clip.permute(1, 0, 2, 3) - mean) / std  # [3, 16, 64, 64]
        with torch.no_grad():
            expected = vit(clip[None]).mean(dim=(2, 3, 4))[0].numpy()
        np.testing.assert_allclose(feats[t], expected, rtol=1e-4, atol=1e-4)


def test_features_feed_a_feature_config(tiny_data, extractor, tmp_path):
    videos = list_videos(tiny_data.videos)
    assert [os.path.basename(v) for v in videos] == [f"{n}.mp4" for n in tiny_data.test_videos]
    report = extract_features(extractor, videos, str(tmp_path), show_progress=False)
    assert len(report.written) == len(videos) and not report.failed
    cfg = load_config(FEATURE_DATASET).dataset.test.to_dict()
    cfg.update(ann_file=tiny_data.ann, class_map=tiny_data.class_map, data_path=str(tmp_path))
    dataset = build_dataset(cfg)
    assert len(dataset) == len(videos)
    for i in range(len(dataset)):
        sample = dataset[i]
        frames = dataset.data_list[i][1]["frame"]
        assert tuple(sample["inputs"].shape) == (64, frames // 4)
        assert sample["metas"]["snippet_stride"] == 4 and sample["metas"]["offset_frames"] == 0


def test_bad_videos_stop_or_are_skipped(tiny_data, extractor, tmp_path):
    good = os.path.join(tiny_data.videos, f"{tiny_data.test_videos[1]}.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(1500))
    with pytest.raises(InferenceError, match=r"(?s)1 video\(s\) cannot be read.*broken.mp4"):
        extract_features(extractor, [good, str(broken)], str(tmp_path / "out"), show_progress=False)
    assert not os.path.exists(tmp_path / "out" / f"{tiny_data.test_videos[1]}.npy")  # nothing done before the check
    report = extract_features(extractor, [good, str(broken)], str(tmp_path / "out"), skip_bad=True, show_progress=False)
    assert list(report.failed) == [str(broken)] and len(report.written) == 1
    again = extract_features(extractor, [good], str(tmp_path / "out"), skip_existing=True, show_progress=False)
    assert again.skipped == report.written and not again.written


def test_clip_length_must_match_the_vit(e2e_config):
    with pytest.raises(InferenceError, match=r"--clip-len 8.*num_frames=16"):
        FeatureExtractor(e2e_config, None, device="cpu", clip_len=8)


def test_feature_configs_have_no_backbone_to_run():
    config = os.path.join(ROOT, "configs", "actionformer", "synthetic_features.py")
    with pytest.raises(InferenceError, match="no video backbone"):
        FeatureExtractor(config, None, device="cpu")


def test_videos_argument_takes_a_video_file_and_refuses_binary_lists(tiny_data, tmp_path):
    video = os.path.join(tiny_data.videos, f"{tiny_data.test_videos[0]}.mp4")
    assert list_videos(video) == [video]  # one video file is the one video to process
    upper = tmp_path / "CLIP.MOV"
    upper.write_bytes(b"x")
    assert list_videos(str(upper)) == [str(upper)]  # extensions in any case
    for name, content in (("clip.ts", open(video, "rb").read()), ("zeros.txt", b"a.mp4\n\0\0")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InferenceError) as info:
            list_videos(str(tmp_path / name))
        message = str(info.value)
        assert name in message and "not a text file" in message and "one video path per line" in message
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n\n {video} \n")
    assert list_videos(str(listing)) == [video]


def faststart_copy(src_path, dst_path):
    """Re-mux ``src_path`` (packets copied) with the index at the front (``movflags=faststart``)."""
    with av.open(src_path) as src, av.open(dst_path, "w", format="mp4", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)


def test_a_truncated_video_is_read_as_its_decodable_part_with_a_warning(tiny_data, extractor, tmp_path, caplog):
    """Inference's probe and feature extraction agree on a cut mp4 whose index is at the front (issue #16)."""
    from opentad.apis import probe_video

    video = os.path.join(tiny_data.videos, f"{tiny_data.test_videos[0]}.mp4")
    faststart_copy(video, str(tmp_path / "full.mp4"))
    data = (tmp_path / "full.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    complete = decode_all(video)
    with caplog.at_level("WARNING", logger="opentad"):
        info = probe_video(str(cut))
        report = extract_features(extractor, [str(cut)], str(tmp_path / "out"), show_progress=False)
    assert 8 <= info.num_frames < len(complete) - 8 and not report.failed
    assert np.load(report.written[0]).shape == (info.num_frames // 4, 64)
    # the frames read are the complete video's first ones
    assert torch.equal(decode_all_readable(str(cut), info.num_frames), complete[: info.num_frames])
    warned = [r.getMessage() for r in caplog.records if r.levelno >= 30 and str(cut) in r.getMessage()]
    assert len(warned) == 1 and f"declares {len(complete) / info.fps:.3f} s" in warned[0]


def decode_all_readable(path, count):
    """The first ``count`` frames through the project's reader, uint8 [count, 3, H, W]."""
    from opentad.datasets.video_reader import VideoReader

    with VideoReader(path) as reader:
        assert len(reader) == count
        return reader.get_batch(range(count))
