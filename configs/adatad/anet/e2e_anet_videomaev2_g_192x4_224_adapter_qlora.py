# QLoRA-AdaTAD, VideoMAEv2-g, ActivityNet-1.3 at 192x4 frames, 224 px (adapters on the last 20 blocks):
# the AdaTAD recipe of e2e_anet_videomaev2_g_192x4_224_adapter.py
# with the adapters' down/up projections quantized (4-bit, frozen, no bias) and
# trained through LoRA (r=16, alpha=32, dropout 0.1) beside them; gamma and the
# temporal convolutions train as in AdaTAD; the frozen ViT is NF4 too (quantize_backbone). See docs/qlora.md.
_base_ = ["e2e_anet_videomaev2_g_192x4_224_adapter.py"]

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerQLoRA",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            quantize_bits=4,
            quantize_backbone=True,
        ),
        # memory options (docs/qlora.md, "Memory"): frozen weights and frames in bf16, block inputs in host memory,
        # frozen attention and MLP recomputed in backward 4 clip groups at a time (measured: less memory, same time)
        custom=dict(frozen_dtype="bf16", offload_activations=True, backward_chunks=4),
    ),
)

solver = dict(amp="bf16")  # the head too (the backbone runs under bf16 autocast with frozen_dtype anyway)

work_dir = "exps/anet/adatad/e2e_anet_videomaev2_g_192x4_224_adapter_qlora"
