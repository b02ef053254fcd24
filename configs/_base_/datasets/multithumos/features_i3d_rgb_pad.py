# Multi-THUMOS on the RGB half of ActionFormer's THUMOS14 I3D features (channels 0-1023 of
# the 2048 RGB + flow channels, stride 4 frames),
# one padded/cropped sample per video. Same annotation layout as THUMOS14, so the THUMOS
# datasets read it. Subsets as in OpenTAD's annotation file: "training" = THUMOS14
# validation videos, "validation" = THUMOS14 test videos.
# Annotations: OpenTAD's multithumos_anno.json and category_idx.txt under data/multithumos/annotations/.
dataset_type = "ThumosPaddingDataset"
annotation_path = "data/multithumos/annotations/multithumos_anno.json"
class_map = "data/multithumos/annotations/category_idx.txt"
data_path = "data/thumos-14/features/i3d_actionformer_stride4_thumos/"
block_list = data_path + "missing_files.txt"

trunc_len = 2304

dataset = dict(
    train=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="training",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,  # snippet stride 4 x 1 = 4 frames
        offset_frames=8,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="ChannelReduction", in_channels=2048, index=[0, 1024]),  # RGB stream only
            dict(type="RandomTrunc", trunc_len=trunc_len, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="validation",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        feature_stride=4,
        sample_stride=1,
        offset_frames=8,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="ChannelReduction", in_channels=2048, index=[0, 1024]),  # RGB stream only
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        type=dataset_type,
        ann_file=annotation_path,
        subset_name="validation",
        block_list=block_list,
        class_map=class_map,
        data_path=data_path,
        filter_gt=False,
        test_mode=True,
        feature_stride=4,
        sample_stride=1,
        offset_frames=8,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="ChannelReduction", in_channels=2048, index=[0, 1024]),  # RGB stream only
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

# Multi-THUMOS is reported as the average over tIoU 0.1:0.9 (step 0.1).
evaluation = dict(
    type="mAP",
    subset="validation",
    tiou_thresholds=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    ground_truth_filename=annotation_path,
)
