# VSGN on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes,
# 75-225 feature rows per video, padded to 256). A small model that learns in a few CPU seconds:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/vsgn/synthetic_features.py 2
# The shared recipe (data, solver, NMS, workflow) with upstream's THUMOS-14 VSGN (configs/vsgn/thumos_i3d.py:
# strides 4-64, anchor scales 1 and 1.5, BalancedCELoss over the classes and the background), narrowed
# to 64 channels and 1-layer towers; the window is the padded length 256. VSGN predicts the classes
# itself, so no external classifier. Upstream's Adam without parameter groups (its decoder's transposed
# convs belong to no group of paramwise=True), at a learning rate for a short run.
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/vsgn.py",
]

tscale = 256
pyramid_levels = [4, 8, 16, 32, 64]
channels = 64
model = dict(
    projection=dict(in_channels=64, out_channels=channels, pyramid_levels=pyramid_levels),
    neck=dict(in_channels=channels, out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        num_layers=1,
        num_classes=6,  # 5 classes and the background
        iou_thr=0.5,
        anchor_generator=dict(tscale=tscale, pyramid_levels=pyramid_levels, anchor_scale=[1, 1.5]),
        tem_head=dict(in_channels=channels),
        loss_cls=dict(type="BalancedCELoss"),
    ),
    roi_head=dict(in_channels=channels, roi_extractor=dict(tscale=tscale, base_stride=4)),
)

optimizer = dict(_delete_=True, type="Adam", lr=5e-3, weight_decay=1e-4)

work_dir = "exps/synthetic/vsgn_features"
