# BMN on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes,
# 75-225 feature rows per video), labels from the generator's video classifier
# (classifiers/video_classifier.json, StandardClassifier). A small model that learns in a few CPU seconds:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/bmn/synthetic_features.py 2
# The shared recipe with every other row read (8-frame snippets: 38-113 steps, actions of 2-38), each
# sample cropped or padded to the map's 128 steps; durations up to 40 steps; upstream's BMN model and
# post-processing (configs/bmn/thumos_i3d.py, with its score_type "iou*s*e" option), narrowed to 64/32
# channels; Adam at lr 4e-3 with one warm-up epoch for a short run.
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/bmn.py",
]

tscale = 128
dscale = 40

dataset = dict(
    train=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=tscale, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

model = dict(
    projection=dict(in_channels=64, out_channels=64),
    rpn_head=dict(in_channels=64),
    roi_head=dict(
        proposal_generator=dict(tscale=tscale, dscale=dscale),
        proposal_roi_extractor=dict(
            in_channels=64, hid_channels=32, roi_channels=64, out_channels=32, tscale=tscale, dscale=dscale
        ),
        proposal_head=dict(in_channels=32, feat_channels=32),
    ),
)

optimizer = dict(type="Adam", lr=4e-3, weight_decay=1e-4, paramwise=True)  # upstream's Adam, a short run's lr
scheduler = dict(warmup_epoch=1)

post_processing = dict(
    score_type="iou*s*e",  # upstream's option: map confidence times start and end probabilities
    nms=dict(
        _delete_=True,
        use_soft_nms=True,
        sigma=0.3,
        max_seg_num=200,
        min_score=0.0001,
        multiclass=False,
        voting_thresh=0.95,
    ),
    external_cls=dict(
        type="StandardClassifier",
        path="data/synthetic-thumos/classifiers/video_classifier.json",
        topk=2,
    ),
)

work_dir = "exps/synthetic/bmn_features"
