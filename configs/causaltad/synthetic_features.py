# CausalTAD on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels,
# 5 classes, 75-225 feature rows per video). A small model that learns in a few CPU seconds:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/causaltad/synthetic_features.py 2
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/causaltad.py",
]

model = dict(
    projection=dict(
        in_channels=64,
        out_channels=64,
        arch=(2, 0, 5),
        channel_expand=1,
        drop_path_rate=0.0,
        max_seq_len=256,
    ),
    neck=dict(in_channels=64, out_channels=64),
    rpn_head=dict(num_classes=5, in_channels=64, feat_channels=64),
)

work_dir = "exps/synthetic/causaltad_features"
