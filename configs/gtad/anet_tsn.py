# G-TAD on ActivityNet-1.3 TSN features (the TSP dataset base pointed at unresized TSN features), resized to 100 steps
# (a 100 x 100 proposal map); classes from the CUHK video classifier: upstream OpenTAD's recipe
# (configs/gtad/anet_tsn.py).
_base_ = [
    "../_base_/datasets/activitynet-1.3/features_tsp_resize.py",  # dataset
    "../_base_/models/gtad.py",  # model
]

resize_length = 100
data_path = "data/activitynet-1.3/features/anet_tsn_npy_unresize/"
block_list = "data/activitynet-1.3/features/anet_tsn_npy_unresize/missing_files.txt"
dataset = dict(
    train=dict(data_path=data_path, block_list=block_list, resize_length=resize_length),
    val=dict(data_path=data_path, block_list=block_list, resize_length=resize_length),
    test=dict(data_path=data_path, block_list=block_list, resize_length=resize_length),
)

solver = dict(
    train=dict(batch_size=16, num_workers=4),
    val=dict(batch_size=16, num_workers=4),
    test=dict(batch_size=16, num_workers=4),
    clip_grad_norm=1,
)

optimizer = dict(type="Adam", lr=4e-3, weight_decay=1e-4)
scheduler = dict(type="MultiStepLR", milestones=[5], gamma=0.1, max_epoch=10)

inference = dict(test_epoch=7, load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.8,  # upstream also notes 0.45 and 0.55
        max_seg_num=100,
        iou_threshold=0,  # unused by soft-NMS
        voting_thresh=0.95,  # 0 turns voting off
    ),
    external_cls=dict(
        type="CUHKANETClassifier",
        path="data/activitynet-1.3/classifiers/cuhk_val_simp_7.json",
        topk=2,
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=1,
    val_eval_interval=1,
    val_start_epoch=4,
)

work_dir = "exps/anet/gtad_tsn_100x100"
