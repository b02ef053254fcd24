# THUMOS-14 raw videos read as sliding windows of 256 snippets (4 frames each) for training, validation and
# test, 224 px crops: upstream's configs/_base_/datasets/thumos-14/e2e_sw_256x224x224.py (AFSD's end-to-end
# I3D-R50 recipe). Windows overlap by a quarter for training and validation, by half for test.
dataset_type = "ThumosSlidingDataset"
annotation_path = "data/thumos-14/annotations/thumos_14_anno.json"
class_map = "data/thumos-14/annotations/category_idx.txt"
data_path = "data/thumos-14/raw_data/video"
block_list = None

window_size = 256

_decode = [
    dict(type="PrepareVideoInfo", format="mp4"),
    dict(type="mmaction.DecordInit", num_threads=4),
    dict(type="LoadFrames", num_clips=1, method="sliding_window"),
    dict(type="mmaction.DecordDecode"),
]
_centre_crop = [
    dict(type="mmaction.Resize", scale=(-1, 224)),
    dict(type="mmaction.CenterCrop", crop_size=224),
    dict(type="mmaction.FormatShape", input_format="NCTHW"),
]
_windows = dict(
    type=dataset_type,
    ann_file=annotation_path,
    block_list=block_list,
    class_map=class_map,
    data_path=data_path,
    filter_gt=False,
    feature_stride=4,
    sample_stride=1,  # one snippet = 1 x 4 frames
    window_size=window_size,
)

dataset = dict(
    train=dict(
        **_windows,
        subset_name="training",
        window_overlap_ratio=0.25,
        pipeline=_decode + [
            dict(type="mmaction.Resize", scale=(-1, 256)),
            dict(type="mmaction.RandomResizedCrop"),
            dict(type="mmaction.Resize", scale=(224, 224), keep_ratio=False),
            dict(type="mmaction.Flip", flip_ratio=0.5),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        **_windows,
        subset_name="validation",
        window_overlap_ratio=0.25,
        pipeline=_decode + _centre_crop + [
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        **_windows,
        subset_name="validation",
        test_mode=True,
        window_overlap_ratio=0.5,
        pipeline=_decode + _centre_crop + [
            dict(type="ConvertToTensor", keys=["imgs"]),
            dict(type="Collect", inputs="imgs", keys=["masks"]),
        ],
    ),
)

evaluation = dict(
    type="mAP",
    subset="validation",
    tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7],
    ground_truth_filename=annotation_path,
)
