# The quick start: QLoRA-AdaTAD on the synthetic videos, as the real recipe
# runs it: a pretrained video ViT, quantized to NF4 and frozen, with QLoRA
# adapters and LoRA trained on top (tools/quickstart.sh runs these three):
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   python tools/prepare_data/synthetic/pretrain_vit.py configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_pretrained.py
#   bash tools/dist_train.sh configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_pretrained.py 1
# The pretrained weights stand in for VideoMAE's: the tiny ViT of
# e2e_synthetic_vit_tiny_qlora.py trained by pretrain_vit.py to name the action
# of every tubelet of synthetic clips of their own seed (never the detection
# videos); docs/synthetic_data.md, "A pretrained tiny ViT".
# 20 epochs of the 40 training videos (720 steps), evaluated once, at the end.
_base_ = ["e2e_synthetic_vit_tiny_qlora.py"]

model = dict(backbone=dict(custom=dict(pretrain="pretrained/synthetic/vit_tiny_synthetic.pth")))

scheduler = dict(max_epoch=20)
workflow = dict(end_epoch=20, val_eval_interval=20, checkpoint_interval=10)

work_dir = "exps/synthetic/adatad_e2e_vit_tiny_qlora_pretrained"
