# QLoRA-AdaTAD, InternVideo ViT-L, Ego4D-MQ at 1800x4 frames, 192 px (adapters on the last 12 blocks):
# the AdaTAD recipe of e2e_ego4d_internvideo_1800x4_192_adapter_lr4e-4.py
# with the adapters' down/up projections quantized (4-bit, frozen, no bias) and
# trained through LoRA (r=16, alpha=32, dropout 0.1) beside them; gamma and the
# temporal convolutions train as in AdaTAD. See docs/qlora.md.
_base_ = ["e2e_ego4d_internvideo_1800x4_192_adapter_lr4e-4.py"]

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerQLoRA",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            quantize_bits=4,
        ),
        # memory options (docs/qlora.md, "Memory"): frozen weights and frames in bf16, block inputs in host memory
        custom=dict(frozen_dtype="bf16", offload_activations=True),
    ),
)

solver = dict(amp="bf16")  # the head too (the backbone runs under bf16 autocast with frozen_dtype anyway)

work_dir = "exps/ego4d/adatad/e2e_ego4d_internvideo_1800x4_192_adapter_lr4e-4_qlora"
