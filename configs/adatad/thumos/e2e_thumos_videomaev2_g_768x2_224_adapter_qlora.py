# QLoRA-AdaTAD, VideoMAEv2-g, 768 frames x 2 at 224 px (adapters on the last 20 blocks): the AdaTAD recipe of e2e_thumos_videomaev2_g_768x2_224_adapter.py with the adapters' down/up
# projections quantized (4-bit, frozen, no bias) and trained through LoRA
# (r=16, alpha=32, dropout 0.1) beside them; gamma and the temporal convolutions
# train as in AdaTAD; the frozen ViT is NF4 too (quantize_backbone). See docs/qlora.md.
_base_ = ["e2e_thumos_videomaev2_g_768x2_224_adapter.py"]

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
        # memory (docs/qlora.md, "A memory budget"): frozen weights and frames in bf16; per block, the fastest plan
        # whose step fits a 24 GiB card (memory_budget_gib=22, lowered with a warning on a smaller card: set it for
        # yours). memory_budget_gib=None: the fixed least-memory settings, block inputs in host memory and the
        # frozen attention and MLP recomputed in backward 4 clip groups at a time. fused_residual: the adapters'
        # residual in one Triton kernel, the same rounding (measured faster for g; slower for the launch-bound S)
        custom=dict(frozen_dtype="bf16", offload_activations=True, backward_chunks=4, memory_budget_gib=22,
                    fused_residual=True),
    ),
)

solver = dict(amp="bf16")  # the head too (the backbone runs under bf16 autocast with frozen_dtype anyway)

work_dir = "exps/thumos/adatad/e2e_thumos_videomaev2_g_768x2_224_adapter_qlora"
