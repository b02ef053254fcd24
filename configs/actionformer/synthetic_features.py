# ActionFormer on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels,
# 5 classes, 75-225 feature rows per video). A small model that learns in a few CPU minutes:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/actionformer/synthetic_features.py 2
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/actionformer.py",
]

model = dict(
    projection=dict(
        in_channels=64,
        out_channels=64,
        arch=(2, 2, 5),
        attn_cfg=dict(n_head=4, n_mha_win_size=9),  # 9 // 2 * 2 * 32 = 256 divides max_seq_len
        path_pdrop=0.0,
        max_seq_len=256,
    ),
    neck=dict(in_channels=64, out_channels=64),
    rpn_head=dict(num_classes=5, in_channels=64, feat_channels=64),
)

work_dir = "exps/synthetic/actionformer_features"
