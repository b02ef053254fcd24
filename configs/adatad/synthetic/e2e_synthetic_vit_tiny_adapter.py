# AdaTAD end to end on the synthetic videos, small enough for a CPU:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   OMP_NUM_THREADS=1 bash tools/dist_train.sh configs/adatad/synthetic/e2e_synthetic_vit_tiny_adapter.py 1
# A 4-block ViT (64 channels, 16-px patches on 64-px frames) with a temporal
# adapter in every block, on windows of 128 frames cut into 8 clips of 16.
# The ViT stays random and frozen (pretrained weights for it come from
# tools/prepare_data/synthetic/pretrain_vit.py: set custom.pretrain, as
# e2e_synthetic_vit_tiny_qlora_pretrained.py does); as in AdaTAD only the
# adapters (and the detector) train. Training the random
# ViT as well (freeze_vit=False, backbone lr 1e-3) was measured and did worse
# (docs/benchmarks.md). Batch 1 and no EMA: on a few dozen videos the number of
# steps matters most, and a 0.999 weight average lags far behind over a few hundred.
_base_ = [
    "../../_base_/datasets/synthetic/e2e_train_trunc_test_sw_128x64x64.py",
    "../../_base_/models/actionformer.py",
]

window_size = 128
clip_len = 16
chunk_num = window_size // clip_len

model = dict(
    backbone=dict(
        type="mmaction.Recognizer3D",
        backbone=dict(
            type="VisionTransformerAdapter",
            img_size=64,
            patch_size=16,
            embed_dims=64,
            depth=4,
            num_heads=4,
            mlp_ratio=4,
            qkv_bias=True,
            num_frames=clip_len,
            drop_path_rate=0.0,
            norm_cfg=dict(type="LN", eps=1e-6),
            return_feat_map=True,
            with_cp=False,
            total_frames=window_size,
            adapter_index=list(range(4)),
        ),
        data_preprocessor=dict(
            type="mmaction.ActionDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            format_shape="NCTHW",
        ),
        custom=dict(
            pretrain=None,
            pre_processing_pipeline=[
                dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=chunk_num),
            ],
            post_processing_pipeline=[
                dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
                dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=chunk_num),
                dict(type="Interpolate", keys=["feats"], size=window_size),
            ],
            norm_eval=False,
            freeze_backbone=False,
        ),
    ),
    projection=dict(
        in_channels=64,
        out_channels=64,
        max_seq_len=window_size,
        attn_cfg=dict(n_head=4, n_mha_win_size=-1),
        path_pdrop=0.0,
    ),
    neck=dict(in_channels=64, out_channels=64),
    rpn_head=dict(num_classes=5, in_channels=64, feat_channels=64),
)

solver = dict(
    train=dict(batch_size=1, num_workers=0),
    val=dict(batch_size=2, num_workers=0),
    test=dict(batch_size=2, num_workers=0),
    clip_grad_norm=1,
    ema=False,
)

optimizer = dict(
    type="AdamW",
    lr=1e-3,
    weight_decay=0.05,
    paramwise=True,
    backbone=dict(
        lr=0,
        weight_decay=0,
        custom=[dict(name="adapter", lr=2e-3, weight_decay=0.05)],
        exclude=["backbone"],
    ),
)
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=2, max_epoch=40)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.5,
        max_seg_num=200,
        iou_threshold=0.1,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.7,
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=5,
    checkpoint_interval=10,
    val_loss_interval=-1,
    val_eval_interval=10,
    val_start_epoch=0,
    end_epoch=40,
)

work_dir = "exps/synthetic/adatad_e2e_vit_tiny_adapter"
