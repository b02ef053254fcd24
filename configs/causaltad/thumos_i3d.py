# CausalTAD on THUMOS-14 I3D features: upstream OpenTAD's recipe (configs/causaltad/thumos_i3d.py).
_base_ = [
    "../_base_/datasets/thumos-14/features_i3d_train_trunc_test_sw.py",  # dataset config
    "../_base_/models/causaltad.py",  # model config
]

model = dict(
    projection=dict(in_channels=2048, input_pdrop=0.3),
    rpn_head=dict(loss_normalizer=250),
)

solver = dict(
    train=dict(batch_size=2, num_workers=2),
    val=dict(batch_size=2, num_workers=2),
    test=dict(batch_size=2, num_workers=2),
    clip_grad_norm=1,
    ema=True,
    amp=True,
)

optimizer = dict(type="AdamW", lr=1e-4, weight_decay=0.05, paramwise=True)
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5, max_epoch=50)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.5,
        max_seg_num=2000,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.7,  # 0 disables voting
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=20,
    checkpoint_interval=1,
    val_loss_interval=-1,
    val_eval_interval=1,
    val_start_epoch=30,
)

work_dir = "exps/thumos/causal_i3d"
