# The shared recipe of the proposal detectors' synthetic configs (BMN, GTAD, TSI, ETAD): the recipe of
# synthetic_features_recipe.py with every other feature row read (8-frame snippets, 38-113 per video),
# each sample cropped or padded to 128 steps (a detector's tscale), upstream's THUMOS proposal
# post-processing (soft-NMS sigma 0.3 with voting, class-agnostic) and the generator's video classifier
# (classifiers/video_classifier.json, StandardClassifier, topk=2) naming the proposals. Generate the data
# with one class per video (classes_per_video=1) for a video-level classifier to name every action.
#   _base_ = ["../_base_/synthetic_proposals_recipe.py", "../_base_/models/<family>.py"]
_base_ = ["synthetic_features_recipe.py"]

tscale = 128

dataset = dict(
    train=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=tscale, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    val=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        sample_stride=2,
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length=tscale),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

post_processing = dict(
    nms=dict(
        _delete_=True,
        use_soft_nms=True,
        sigma=0.3,
        max_seg_num=200,
        min_score=0.0001,
        multiclass=False,
        voting_thresh=0.95,
    ),
    external_cls=dict(
        type="StandardClassifier",
        path="data/synthetic-thumos/classifiers/video_classifier.json",
        topk=2,
    ),
)
