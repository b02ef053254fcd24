# QLoRA-AdaTAD, VideoMAE-L, ActivityNet-1.3 at 192x4 frames, 160 px:
# the AdaTAD recipe of e2e_anet_videomae_l_192x4_160_adapter.py
# with the adapters' down/up projections quantized (4-bit, frozen, no bias) and
# trained through LoRA (r=16, alpha=32, dropout 0.1) beside them; gamma and the
# temporal convolutions train as in AdaTAD. See docs/qlora.md.
_base_ = ["e2e_anet_videomae_l_192x4_160_adapter.py"]

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

work_dir = "exps/anet/adatad/e2e_anet_videomae_l_192x4_160_adapter_qlora"
