"""Masked (local) multi-head conv attention against a brute-force loop."""
import math

import pytest
import torch

from opentad.models.bricks.transformer import LocalMaskedMHCA, MaskedMHCA, TransformerBlock


def _randomize(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module.eval()


def _brute_force(module, x, mask, window):
    """Per query: softmax over the valid keys within +-window//2 (all keys if window is None)."""
    q, k, v, qx_mask, kv_mask = module.project_qkv(x, mask)
    B, H, T, D = q.shape
    out = torch.zeros(B, H, T, D)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                if window is None:
                    keys = [j for j in range(k.shape[2]) if kv_mask[b, j]]
                else:
                    w = window // 2
                    keys = [j for j in range(max(0, t - w), min(T, t + w + 1)) if kv_mask[b, j]]
                if not keys or not qx_mask[b, t]:
                    continue
                scores = torch.stack([q[b, h, t] @ k[b, h, j] / math.sqrt(D) for j in keys])
                weights = torch.softmax(scores, dim=0)
                out[b, h, t] = sum(wt * v[b, h, j] for wt, j in zip(weights, keys))
    out = out.transpose(2, 3).reshape(B, H * D, T)
    return module.proj(out) * qx_mask[:, None], qx_mask


@pytest.mark.parametrize("window,length", [(5, 13), (7, 12), (3, 9)])
def test_local_attention_matches_brute_force(window, length):
    module = _randomize(LocalMaskedMHCA(8, 2, window_size=window))
    x = torch.randn(2, 8, length)
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, length - 4 :] = False
    x[1, :, length - 4 :] = 100.0  # garbage where padded: must not matter
    out, out_mask = module(x, mask)
    ref, ref_mask = _brute_force(module, x, mask, window)
    assert torch.equal(out_mask, ref_mask)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_global_attention_matches_brute_force():
    module = _randomize(MaskedMHCA(8, 4))
    x = torch.randn(2, 8, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    out, _ = module(x, mask)
    ref, _ = _brute_force(module, x, mask, None)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_strided_attention_halves_length_and_mask():
    module = _randomize(LocalMaskedMHCA(8, 2, window_size=5, n_qx_stride=2, n_kv_stride=2))
    x = torch.randn(1, 8, 12)
    mask = torch.tensor([[True] * 7 + [False] * 5])
    out, out_mask = module(x, mask)
    # the strided mask keeps the validity of steps 0, 2, 4, ...: steps 0..6 valid -> 0, 2, 4, 6
    assert out.shape == (1, 8, 6)
    assert out_mask.tolist() == [[True, True, True, True, False, False]]
    assert (out[0, :, 4:] == 0).all()
    ref, _ = _brute_force(module, x, mask, 5)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_sample_without_valid_step_gives_zeros_not_nan():
    for module in (MaskedMHCA(8, 2), LocalMaskedMHCA(8, 2, window_size=5)):
        out, _ = _randomize(module)(torch.randn(1, 8, 6), torch.zeros(1, 6, dtype=torch.bool))
        assert torch.equal(out, torch.zeros_like(out))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="n_head"):
        MaskedMHCA(10, 4)
    with pytest.raises(ValueError, match="window_size"):
        LocalMaskedMHCA(8, 2, window_size=1)
    with pytest.raises(ValueError, match="n_qx_stride"):
        MaskedMHCA(8, 2, n_qx_stride=3)


def test_transformer_block_residual_structure_and_masking():
    block = _randomize(TransformerBlock(8, 2, n_ds_strides=(2, 2), mha_win_size=5, path_pdrop=0.1))
    x = torch.randn(1, 8, 12)
    mask = torch.tensor([[True] * 8 + [False] * 4])
    out, out_mask = block(x, mask)
    # recompute the block by hand from its parts (eval mode: no drop path)
    attn, attn_mask = block.attn(block.ln1(x), mask)
    m = attn_mask[:, None].float()
    skip = torch.nn.functional.max_pool1d(x, 3, stride=2, padding=1) * m
    mid = skip + block.drop_path_attn.scale * attn
    expected = mid + block.drop_path_mlp.scale * block.mlp(block.ln2(mid)) * m
    torch.testing.assert_close(out, expected)
    assert out_mask.tolist() == [[True] * 4 + [False] * 2]
    assert sorted(k for k in block.state_dict() if not k.startswith("attn.")) == sorted(
        ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.3.weight",
         "mlp.3.bias", "drop_path_attn.scale", "drop_path_mlp.scale"]
    )
