# Proposals of anet_tsn.py evaluated by average recall (AR@AN and AUC, up to 100 proposals a video)
# instead of mAP: upstream OpenTAD's recipe (configs/bmn/anet_tsn_recall.py).
_base_ = ["anet_tsn.py"]

evaluation = dict(
    type="Recall",
    subset="validation",
    topk=[1, 5, 10, 100],
    max_avg_nr_proposals=100,
    tiou_thresholds=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
)

post_processing = dict(
    score_type="iou*s*e",
    proposal=True,
    nms=dict(
        use_soft_nms=True,
        sigma=0.4,
        max_seg_num=100,
        iou_threshold=0,  # unused by soft-NMS
        min_score=0,
        multiclass=False,
        voting_thresh=0.95,  # 0 turns voting off
        method=3,
        t1=0.5,
        t2=0.4,
    ),
    external_cls=dict(_delete_=True, type="PseudoClassifier"),  # proposals keep no class
    save_dict=False,
)
