# VideoMambaSuite on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels,
# 5 classes, 75-225 feature rows per video). A small model that learns in a few CPU seconds:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/videomambasuite/synthetic_features.py 2
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/videomambasuite.py",
]

model = dict(
    projection=dict(
        in_channels=64,
        out_channels=64,
        arch=(2, 1, 5),
        mamba_cfg=dict(kernel_size=4, drop_path_rate=0.0, use_mamba_type="dbm"),
        max_seq_len=256,
    ),
    neck=dict(in_channels=64, out_channels=64),
    rpn_head=dict(num_classes=5, in_channels=64, feat_channels=64),
)

work_dir = "exps/synthetic/videomambasuite_features"
