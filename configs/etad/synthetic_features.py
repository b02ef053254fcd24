# ETAD on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes,
# 75-225 feature rows per video), labelled by the generator's video classifier. A small model that
# learns in seconds on one CPU core (tests/cores/test_e2e_synthetic_etad.py generates the data with
# one class per video, classes_per_video=1, and trains it).
# The proposal detectors' recipe (128-step samples of 8-frame snippets, upstream's THUMOS soft-NMS,
# the synthetic video classifier) with upstream's ETAD model (configs/etad/thumos_i3d.py: three
# stages, LSTM neck) narrowed to 32 channels, durations up to 32 steps (8.5 s), RoI features from the
# Align1D op (native when built, else its PyTorch fallback; upstream's THUMOS config uses
# torchvision's roi_align), and Adam at lr 5e-3 for a short run.
_base_ = [
    "../_base_/synthetic_proposals_recipe.py",
    "../_base_/models/etad.py",
]

_gn4 = dict(type="GN", num_groups=4)  # 8 channels a group (upstream: 16 groups of 256 channels)

model = dict(
    projection=dict(in_channels=64, out_channels=32, norm_cfg=_gn4),
    neck=dict(in_channels=32, out_channels=32, norm_cfg=_gn4),
    rpn_head=dict(in_channels=32),
    roi_head=dict(
        proposal_generator=dict(tscale={{_base_.tscale}}, dscale=32, sampling_ratio=0.05),
        proposal_roi_extractor=dict(roi_size=8, method="align1d"),
        proposal_head=dict(in_channels=32, roi_size=8, feat_channels=64, fcs_channels=32),
    ),
)

optimizer = dict(_delete_=True, type="Adam", lr=5e-3, weight_decay=1e-4)  # upstream's Adam, a short run's lr
scheduler = dict(_delete_=True, type="MultiStepLR", milestones=[10], gamma=0.1, max_epoch=12)

work_dir = "exps/synthetic/etad_features"
