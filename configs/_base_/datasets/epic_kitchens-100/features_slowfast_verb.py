# EPIC-Kitchens-100 verb detection from SlowFast features (30 fps, one row per 16 frames; upstream OpenTAD values).
# Every split reads whole videos (EpicKitchensPaddingDataset): training randomly truncates to 2304
# snippets, validation and test take each video whole.
# Annotations: tools/prepare_data/epic/convert_epic_kitchens_anno.py; check: tools/prepare_data/epic/check_data.py.
dataset_type = "EpicKitchensPaddingDataset"
annotation_path = "data/epic_kitchens-100/annotations/epic_kitchens_verb.json"
class_map = "data/epic_kitchens-100/annotations/category_idx_verb.txt"
data_path = "data/epic_kitchens-100/features/slowfast_fps30_stride16_clip32/"
block_list = data_path + "missing_files.txt"

trunc_len = 2304

dataset = dict(
    train=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="train",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=True,
        fps=30,
        feature_stride=16,
        sample_stride=1,
        offset_frames=16,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=trunc_len, trunc_thresh=0.3, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="val",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        fps=30,
        feature_stride=16,
        sample_stride=1,
        offset_frames=16,
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
        subset_name="val",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        test_mode=True,
        fps=30,
        feature_stride=16,
        sample_stride=1,
        offset_frames=16,
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
    subset="val",
    tiou_thresholds=[0.1, 0.2, 0.3, 0.4, 0.5],
    ground_truth_filename=annotation_path,
)
