import os

import numpy as np
import pytest
import torch

from opentad.datasets.transforms import PrepareVideoInfo, VideoDecode, VideoInit
from opentad.datasets.video_reader import VideoReadError
from opentad.transforms import Compose


def test_prepare_video_info_sets_filename(video_dir):
    out = PrepareVideoInfo(format="mp4")({"data_path": video_dir, "video_name": "clip"})
    assert out["filename"] == os.path.join(video_dir, "clip.mp4") and out["modality"] == "RGB"


def test_prepare_video_info_missing_names_video_and_path(video_dir):
    with pytest.raises(FileNotFoundError) as info:
        PrepareVideoInfo(format="mp4", prefix="v_")({"data_path": video_dir, "video_name": "nope"})
    assert "nope" in str(info.value) and os.path.join(video_dir, "v_nope.mp4") in str(info.value)


def test_corrupt_video_error_names_file(video_dir):
    path = os.path.join(video_dir, "broken.mp4")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        VideoInit()({"filename": path})


def test_missing_video_in_init(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.mp4"):
        VideoInit()({"filename": str(tmp_path / "none.mp4")})


def test_init_and_decode_contract(video_dir, vt):
    results = VideoInit(num_threads=1)({"filename": os.path.join(video_dir, "clip.mp4")})
    assert results["total_frames"] == 60 and results["avg_fps"] == pytest.approx(30.0)
    results["frame_inds"] = np.array([[4, 8, 8, 59]])  # 2-D is squeezed, as mmaction's decoder does
    out = VideoDecode()(results)
    assert out["imgs"].shape == (4, 3, 48, 64) and out["imgs"].dtype == torch.uint8
    assert vt.frame_levels(out["imgs"]) == [4, 8, 8, 59]
    assert out["img_shape"] == (48, 64) and out["original_shape"] == (48, 64) and out["video_reader"] is None
    with pytest.raises(ValueError, match="efficient"):
        VideoDecode(mode="efficient")


def test_adatad_style_pipeline_end_to_end(video_dir, seeded):
    pipe = Compose(
        [
            dict(type="PrepareVideoInfo", format="mp4"),
            dict(type="mmaction.DecordInit", num_threads=4),
            dict(type="LoadFrames", num_clips=1, method="random_trunc", trunc_len=8, trunc_thresh=0.75,
                 crop_ratio=[0.9, 1.0], scale_factor=1),
            dict(type="mmaction.DecordDecode"),
            dict(type="mmaction.Resize", scale=(-1, 40)),
            dict(type="mmaction.RandomResizedCrop"),
            dict(type="mmaction.Resize", scale=(32, 32), keep_ratio=False),
            dict(type="mmaction.Flip", flip_ratio=0.5),
            dict(type="mmaction.ImgAug", transforms="default"),
            dict(type="mmaction.ColorJitter"),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ]
    )
    sample = {
        "video_name": "clip", "data_path": video_dir, "snippet_stride": 4, "fps": 30.0, "duration": 2.0,
        "gt_segments": np.array([[2.0, 6.0]], np.float32), "gt_labels": np.array([1]),
    }
    out = pipe(dict(sample))
    assert out["inputs"].shape == (1, 3, 8, 32, 32) and out["inputs"].dtype == torch.uint8
    assert out["masks"].shape == (8,) and out["gt_segments"].shape[1] == 2 and out["gt_labels"].dtype == torch.int64
    assert out["metas"]["video_name"] == "clip"
