# The synthetic THUMOS-format dataset from its raw videos, end to end (the
# layout of thumos-14/e2e_train_trunc_test_sw_256x224x224.py, scaled down for
# the CPU): 96x96 videos at 30 fps; one snippet = 4 frames; windows of 128
# snippets, one frame per snippet, frames resized to 64x64.
# "validation" videos train, "test" videos evaluate (THUMOS14's split names).
# No horizontal flip, unlike THUMOS14: here the direction of a motion is the
# class (BaseballPitch moves right, CricketBowling left), so flipping would
# change the label. Measured: QLoRA-AdaTAD from the pretrained tiny ViT,
# 57.5 average mAP without the flip against 47.1 with it (docs/qlora.md).
# Generate the data with: python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
annotation_path = "data/synthetic-thumos/annotations/thumos_14_anno.json"
class_map = "data/synthetic-thumos/annotations/category_idx.txt"
data_path = "data/synthetic-thumos/raw_data/video"
block_list = None

window_size = 128
img_size = 64

dataset = dict(
    train=dict(
        type="ThumosPaddingDataset",
        ann_file=annotation_path,
        subset_name="validation",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,
        offset_frames=0,
        pipeline=[
            dict(type="PrepareVideoInfo", format="mp4"),
            dict(type="mmaction.DecordInit", num_threads=1),
            dict(
                type="LoadFrames",
                num_clips=1,
                method="random_trunc",
                trunc_len=window_size,
                trunc_thresh=0.5,
                crop_ratio=[0.9, 1.0],
            ),
            dict(type="mmaction.DecordDecode"),
            dict(type="mmaction.Resize", scale=(img_size, img_size), keep_ratio=False),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        type="ThumosSlidingDataset",
        ann_file=annotation_path,
        subset_name="test",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,
        offset_frames=0,
        window_size=window_size,
        window_overlap_ratio=0.25,
        pipeline=[
            dict(type="PrepareVideoInfo", format="mp4"),
            dict(type="mmaction.DecordInit", num_threads=1),
            dict(type="LoadFrames", num_clips=1, method="sliding_window"),
            dict(type="mmaction.DecordDecode"),
            dict(type="mmaction.Resize", scale=(img_size, img_size), keep_ratio=False),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        type="ThumosSlidingDataset",
        ann_file=annotation_path,
        subset_name="test",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        test_mode=True,
        feature_stride=4,
        sample_stride=1,
        offset_frames=0,
        window_size=window_size,
        window_overlap_ratio=0.5,
        pipeline=[
            dict(type="PrepareVideoInfo", format="mp4"),
            dict(type="mmaction.DecordInit", num_threads=1),
            dict(type="LoadFrames", num_clips=1, method="sliding_window"),
            dict(type="mmaction.DecordDecode"),
            dict(type="mmaction.Resize", scale=(img_size, img_size), keep_ratio=False),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs"]),
            dict(type="Collect", inputs="imgs", keys=["masks"]),
        ],
    ),
)

evaluation = dict(
    type="mAP",
    subset="test",
    tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7],
    ground_truth_filename=annotation_path,
)
