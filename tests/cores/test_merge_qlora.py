"""merge_qlora: a QLoRA checkpoint becomes an AdaTAD checkpoint with the same outputs."""
import os

import torch

from opentad.cores.merge_qlora import merge_qlora_checkpoint
from opentad.models.bricks.lora import LoRALinear
from opentad.registry import DETECTORS, build
from opentad.utils.checkpoint import atomic_save, load_checkpoint, model_state_dict
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QLORA = os.path.join(ROOT, "configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py")
ADATAD = os.path.join(ROOT, "configs/adatad/synthetic/e2e_synthetic_vit_tiny_adapter.py")


def test_merged_checkpoint_loads_into_adatad_and_matches(tmp_path):
    torch.manual_seed(0)
    qlora = build(load_config(QLORA).model, DETECTORS).eval()
    with torch.no_grad():  # stand-in for training: non-zero LoRA updates everywhere
        for m in qlora.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.weight.normal_(0, 0.05)
    state = model_state_dict(qlora)
    ckpt = tmp_path / "qlora.pth"
    atomic_save({"epoch": 3, "state_dict": state, "state_dict_ema": state}, str(ckpt))
    out = tmp_path / "merged.pth"
    counts = merge_qlora_checkpoint(load_config(QLORA).model, str(ckpt), str(out))
    assert counts["state_dict"] == counts["state_dict_ema"] > 0

    adatad = build(load_config(ADATAD).model, DETECTORS).eval()
    load_checkpoint(adatad, str(out), strict=True)  # no missing or unexpected key
    frames = torch.randint(0, 256, (1, 1, 3, 128, 64, 64), dtype=torch.uint8)
    masks = torch.ones(1, 128, dtype=torch.bool)
    with torch.no_grad():
        expected = qlora.backbone(frames, masks)
        got = adatad.backbone(frames, masks)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
