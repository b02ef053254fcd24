# CausalTAD on EPIC-Kitchens-100 InternVideo2-1B features, verbs (train: crops; test: windows of 4608,
# stride 8), EPIC action detection challenge 2024: upstream OpenTAD's recipe
# (configs/causaltad/egovis_challenge_2024/epic_internvideo2_1b_verb.py).
_base_ = [
    "../../_base_/datasets/epic_kitchens-100/features_internvideo2_verb_train_trunc_test_sw_s8_pad4608.py",  # dataset
    "../../_base_/models/causaltad.py",  # model
]

model = dict(
    projection=dict(
        in_channels=1408,
        arch=(2, 2, 6),
        use_abs_pe=True,
        max_seq_len=4608,
        input_pdrop=0.2,
    ),
    neck=dict(num_levels=7),
    rpn_head=dict(
        num_classes=97,
        prior_generator=dict(
            strides=[1, 2, 4, 8, 16, 32, 64],
            regression_range=[(0, 4), (2, 8), (4, 16), (8, 32), (16, 64), (32, 128), (64, 10000)],
        ),
        loss_normalizer=250,
        loss_weight=0.5,
    ),
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
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5, max_epoch=35)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    pre_nms_topk=5000,
    nms=dict(
        use_soft_nms=True,
        sigma=0.4,
        max_seg_num=3000,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.75,  # 0 turns voting off
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=-1,
    val_eval_interval=1,
    val_start_epoch=22,
)

work_dir = "exps/epic_kitchens/causal_internvideo2_1b_verb"
