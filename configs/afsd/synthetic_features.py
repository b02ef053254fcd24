# AFSD on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes,
# 75-225 feature rows per video). A small model that learns in a few CPU seconds:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/afsd/synthetic_features.py 2
# The recipe of configs/_base_/synthetic_features_recipe.py with AFSD's model (upstream's THUMOS
# values of configs/afsd/thumos_i3d.py) narrowed to 64 channels. AFSD needs one input length (its
# priors are fixed), so every video is sampled every 2nd row (8 frames) and padded to 128 steps,
# 4 frames per step on the frame level (512 frames), as upstream's 64 steps and 256 frames.
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/afsd.py",
]

_length = 128
_train_pipeline = [
    dict(type="LoadFeats", feat_format="npy"),
    dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
    dict(type="Padding", length=_length),
    dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
    dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
]
dataset = dict(
    train=dict(sample_stride=2, pipeline=_train_pipeline),
    val=dict(sample_stride=2, pipeline=_train_pipeline),
    test=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length=_length),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

model = dict(
    neck=dict(in_channels=64, out_channels=64, frame_num=_length * 4, layer_num=4),
    rpn_head=dict(
        in_channels=64,
        out_channels=64,
        frame_num=_length * 4,
        feat_t=_length,
        num_classes=6,  # 5 classes and the background
        layer_num=4,  # levels of 128, 64, 32 and 16 steps (strides 4 to 32 frames)
    ),
    roi_head=dict(in_channels=64, num_classes=6, overlap_thresh=0.5, loc_bounded=False, use_smooth_l1=False),
)

# upstream's AFSD recipe (AdamW, MultiStepLR, gradient norm clipped to 0.1) at a rate, batch and schedule
# for this short run; the regression keeps the base model's scale (fpn_strides and loc_weight=1), with
# which it learns in far fewer steps than with configs/afsd/thumos_i3d.py's (strides 1, loc_weight 10)
solver = dict(train=dict(batch_size=2), clip_grad_norm=0.1)
optimizer = dict(type="AdamW", lr=3e-3, weight_decay=1e-3, paramwise=False)
scheduler = dict(_delete_=True, type="MultiStepLR", milestones=[6], gamma=0.1, max_epoch=8)

work_dir = "exps/synthetic/afsd_features"
