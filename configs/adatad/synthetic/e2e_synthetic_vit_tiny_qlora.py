# QLoRA-AdaTAD end to end on the synthetic videos, small enough for a CPU:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py 1
# The tiny ViT of e2e_synthetic_vit_tiny_adapter.py, frozen and quantized to
# NF4 (double quantization), with LoRA on its qkv/proj/fc1/fc2 layers, and
# QLoRA adapters (4-bit frozen projections + LoRA, trainable gamma and
# temporal convolutions) in every block. Here the ViT is random; the quick
# start's e2e_synthetic_vit_tiny_qlora_pretrained.py starts from a pretrained
# one, as the real recipes do (docs/qlora.md, "The synthetic end-to-end run").
_base_ = ["e2e_synthetic_vit_tiny_adapter.py"]

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerQLoRA",
            freeze_vit=True,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            quantize_bits=4,
            quantize_backbone=True,
            backbone_lora_targets=["qkv", "proj", "fc1", "fc2"],
        ),
    ),
)

optimizer = dict(
    backbone=dict(
        lr=0.0,
        weight_decay=0.0,
        custom=[dict(name="adapter", lr=1e-3, weight_decay=0.05), dict(name="lora", lr=1e-3, weight_decay=0.05)],
    ),
)

work_dir = "exps/synthetic/adatad_e2e_vit_tiny_qlora"
