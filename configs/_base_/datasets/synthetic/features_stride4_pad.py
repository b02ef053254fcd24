# The synthetic THUMOS-format dataset (docs/synthetic_data.md), its features [T, C] with one row
# per 4 frames, one padded/cropped sample per video (the layout of thumos-14/features_i3d_pad.py).
# Subsets use THUMOS14's own names: "validation" videos train, "test" videos evaluate.
# Generate the data with: python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
dataset_type = "ThumosPaddingDataset"
annotation_path = "data/synthetic-thumos/annotations/thumos_14_anno.json"
class_map = "data/synthetic-thumos/annotations/category_idx.txt"
data_path = "data/synthetic-thumos/features/stride4/"
block_list = None

# the default synthetic videos last 10-30 s (75-225 feature rows); training crops are padded to this length
trunc_len = 256

dataset = dict(
    train=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="validation",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,
        offset_frames=0,  # row t summarises frames [4t, 4t + 4)
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=trunc_len, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="test",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,
        offset_frames=0,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        type=dataset_type,
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
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

evaluation = dict(
    type="mAP",
    subset="test",
    tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7],
    ground_truth_filename=annotation_path,
)
