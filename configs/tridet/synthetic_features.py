# TriDet on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels,
# 5 classes, 75-225 feature rows per video). A small model that learns in a few CPU minutes:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/tridet/synthetic_features.py 2
# The recipe of configs/actionformer/synthetic_features.py (data, solver, schedule, NMS) with
# TriDet's model: upstream's THUMOS values, narrowed to 64 channels.
_base_ = [
    "../actionformer/synthetic_features.py",
]

model = dict(
    _delete_=True,
    type="TriDet",
    projection=dict(
        type="TriDetProj",
        in_channels=64,
        out_channels=64,
        sgp_mlp_dim=128,
        arch=(2, 2, 5),
        downsample_type="max",
        sgp_win_size=[1, 1, 1, 1, 1, 1],
        k=5,
        init_conv_vars=0,
        conv_cfg=dict(kernel_size=3),
        norm_cfg=dict(type="LN"),
        path_pdrop=0.0,
        use_abs_pe=False,
        max_seq_len=256,  # = the training crops' trunc_len; evaluation pads to it
        input_noise=0.0,
    ),
    neck=dict(type="FPNIdentity", in_channels=64, out_channels=64, num_levels=6),
    rpn_head=dict(
        type="TriDetHead",
        num_classes=5,
        in_channels=64,
        feat_channels=64,
        num_convs=2,
        cls_prior_prob=0.01,
        prior_generator=dict(
            type="PointGenerator",
            strides=[1, 2, 4, 8, 16, 32],
            regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],
        ),
        loss_normalizer=100,
        loss_normalizer_momentum=0.9,
        center_sample="radius",
        center_sample_radius=1.5,
        label_smoothing=0.0,
        boundary_kernel_size=3,
        iou_weight_power=0.2,
        num_bins=16,
        loss=dict(
            cls_loss=dict(type="FocalLoss"),
            reg_loss=dict(type="DIOULoss"),
            iou_rate=dict(type="GIOULoss"),
        ),
    ),
)

optimizer = dict(type="AdamW", lr=1e-3, weight_decay=0.025, paramwise=True)

work_dir = "exps/synthetic/tridet_features"
