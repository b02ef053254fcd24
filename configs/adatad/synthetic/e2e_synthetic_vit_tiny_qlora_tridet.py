# TriDet on the QLoRA-AdaTAD backbone, end to end on the synthetic videos: the backbone, data,
# solver and schedule of e2e_synthetic_vit_tiny_qlora_pretrained.py (the quick start: a pretrained
# tiny ViT, NF4-quantized and frozen, QLoRA adapters and LoRA trained), with TriDet's SGP projection
# and Trident head instead of ActionFormer's (upstream's TriDet values, 64 channels):
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   python tools/prepare_data/synthetic/pretrain_vit.py configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_tridet.py
#   bash tools/dist_train.sh configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_tridet.py 1
_base_ = ["e2e_synthetic_vit_tiny_qlora_pretrained.py"]

model = dict(
    type="TriDet",
    projection=dict(
        _delete_=True,
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
        max_seq_len={{_base_.window_size}},
        input_noise=0.0,
    ),
    rpn_head=dict(
        _delete_=True,
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

work_dir = "exps/synthetic/adatad_e2e_vit_tiny_qlora_tridet"
