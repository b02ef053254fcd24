# G-TAD on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes),
# labels from the generator's video classifier (classifiers/video_classifier.json, StandardClassifier):
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/gtad/synthetic_features.py 2
# The schedule and post-processing of configs/bmn/synthetic_features.py with every fourth feature row
# (16-frame snippets: 19-56 steps, actions of 1-19), each sample cropped or padded to a 64-step map with
# durations up to 16 steps (G-TAD aligns every map cell, at a cost that grows with the map's length, the
# square of its durations and the channels; longer actions still overlap a 16-step proposal by IoU > 0.5),
# and upstream's G-TAD model (configs/_base_/models/gtad.py, configs/gtad/thumos_i3d.py) narrowed to 24
# channels and 4 + 4 aligned bins. Narrow features need an ungrouped projection of two convs (upstream's
# groups=4 for 400-2048 input channels would leave 6 outputs per group here), and with PyTorch's default
# initialisation (upstream's G-TAD keeps it) Adam needs lr 1.6e-2 in this short run (4e-3: mAP@0.5 0.45).
_base_ = ["../bmn/synthetic_features.py"]

tscale = 64
dscale = 16
channels = 24


dataset = dict(
    train=dict(
        sample_stride=4,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=tscale, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        sample_stride=4,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        sample_stride=4,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

model = dict(
    _delete_=True,
    type="GTAD",
    projection=dict(type="ConvSingleProj", num_convs=2, in_channels=64, out_channels=channels, conv_cfg=dict(groups=1)),
    neck=dict(type="GCNeXt", in_channels=channels, out_channels=channels, k=3, groups=32),
    rpn_head=dict(
        type="GCNextTemporalEvaluationHead",
        in_channels=channels,
        num_classes=2,
        loss=dict(pos_thresh=0.5, gt_type=["startness", "endness"]),
    ),
    roi_head=dict(
        type="StandardProposalMapHead",
        proposal_generator=dict(type="DenseProposalMap", tscale=tscale, dscale=dscale),
        proposal_roi_extractor=dict(
            type="GTADExtractor",
            in_channels=channels,
            out_channels=64,
            tscale=tscale,
            dscale=dscale,
            roi_size=4,
            context_size=4,
        ),
        proposal_head=dict(
            type="PEMHead",
            in_channels=64,
            feat_channels=32,
            num_convs=3,
            num_classes=2,
            kernel_size=3,
            loss=dict(
                cls_loss=dict(type="BalancedBCELoss", pos_thresh=0.9),
                reg_loss=dict(type="BalancedL2Loss", high_thresh=0.7, low_thresh=0.3, weight=5.0),
            ),
        ),
    ),
)

optimizer = dict(lr=1.6e-2, paramwise=False)  # upstream's G-TAD: one group (the base's Adam)

work_dir = "exps/synthetic/gtad_features"
