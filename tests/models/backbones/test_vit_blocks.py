"""ViT bricks against independent references: position table, resizing, attention, checkpointing."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opentad.models.bricks.vit import Attention, Block, DropPath, get_sinusoid_encoding, resize_pos_embed


def test_sinusoid_table_matches_formula_loop():
    n, c = 7, 10
    table = get_sinusoid_encoding(n, c)
    assert table.shape == (1, n, c) and table.dtype == torch.float32
    for p in range(n):
        for j in range(c):
            angle = p / math.pow(10000, 2 * (j // 2) / c)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(table[0, p, j].item() - want) < 1e-6


def test_resize_pos_embed_resizes_each_temporal_slice_bicubically():
    t, hs, ws, c = 3, 4, 4, 6
    table = torch.randn(1, t * hs * ws, c)
    out = resize_pos_embed(table, (hs, ws), (2, 5))
    assert out.shape == (1, t * 2 * 5, c)
    for k in range(t):
        slab = table[0, k * hs * ws : (k + 1) * hs * ws].reshape(hs, ws, c).permute(2, 0, 1)[None]
        want = F.interpolate(slab, size=(2, 5), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(-1, c)
        torch.testing.assert_close(out[0, k * 10 : (k + 1) * 10], want)
    assert resize_pos_embed(table, (hs, ws), (hs, ws)) is table


def _biased_attention(embed_dims: int, num_heads: int) -> Attention:
    """An eval-mode attention (seed 0) whose q and v biases are random, not zero."""
    torch.manual_seed(0)
    attn = Attention(embed_dims=embed_dims, num_heads=num_heads, qkv_bias=True).eval()
    with torch.no_grad():
        attn.q_bias.normal_()
        attn.v_bias.normal_()
    return attn


def test_attention_matches_manual_softmax_with_q_and_v_bias():
    attn = _biased_attention(12, 3)
    x = torch.randn(2, 5, 12)
    w = attn.qkv.weight
    bias = torch.cat([attn.q_bias, torch.zeros(12), attn.v_bias])
    qkv = x @ w.T + bias
    q, k, v = qkv[..., :12], qkv[..., 12:24], qkv[..., 24:]
    heads = []
    for h in range(3):
        sl = slice(4 * h, 4 * h + 4)
        scores = (q[..., sl] @ k[..., sl].transpose(1, 2)) / math.sqrt(4)
        heads.append(scores.softmax(-1) @ v[..., sl])
    want = attn.proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=1e-5)


def test_qkv_takes_its_bias_into_the_product_as_upstream_under_bf16_autocast():
    """Upstream's VideoMAE attention computes ``F.linear(x, W, cat(q_bias, 0, v_bias))``: one rounding of the
    biased product. Adding the bias to the rounded product rounds twice and differs in the last bf16 bit of
    many values (checked here, so the comparison can fail), so the plain layer takes the bias into its
    product; a layer of another type (4-bit, LoRA) adds it to its output."""
    attn = _biased_attention(64, 4)
    x = torch.randn(4, 50, 64)
    bias = torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        upstream = F.linear(x, attn.qkv.weight, bias)
        rounded_twice = F.linear(x, attn.qkv.weight) + bias.to(torch.bfloat16)
        q, k, v = upstream.reshape(4, 50, 3, 4, 16).permute(2, 0, 3, 1, 4)  # upstream's layout and attention
        heads = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(4, 50, 64)
        want = attn.proj(heads)
        ours = attn(x)
    assert not torch.equal(upstream, rounded_twice)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, want)

    class Other(nn.Linear):  # not a plain nn.Linear: its own forward, then the bias
        pass

    other = Other(64, 192, bias=False)
    other.load_state_dict(attn.qkv.state_dict())
    attn.qkv = other
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(attn.project_qkv(x), rounded_twice)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="num_heads"):
        Attention(embed_dims=10, num_heads=3)


def test_linear_factory_receives_names_and_builds_every_linear():
    seen = []

    def factory(name, fin, fout, bias):
        seen.append((name, fin, fout, bias))
        return nn.Linear(fin, fout, bias=bias)

    Block(embed_dims=8, num_heads=2, mlp_ratio=2.0, linear_factory=factory)
    assert seen == [("qkv", 8, 24, False), ("proj", 8, 8, True), ("fc1", 8, 16, True), ("fc2", 16, 8, True)]


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    dp = DropPath(0.5).train()
    x = torch.ones(400, 3, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()
    assert 0.35 < (per_sample[:, 0] == 0).float().mean() < 0.65
    assert torch.equal(dp.eval()(x), x)


LOW = (torch.float16, torch.bfloat16, torch.float32)


@pytest.mark.parametrize("stream_dtype,branch_dtype",
                         [(s, b) for s in (torch.bfloat16, torch.float32) for b in LOW] + [(torch.float64,) * 2])
def test_factors_drawn_ahead_equal_the_branch_s_own(stream_dtype, branch_dtype):
    """Compiled blocks and the chunked backward draw the factors from the block input (the stream's dtype) before
    the branch exists; cast at use to the branch's dtype (under autocast, another one) they are the factors the
    branch draws itself, bit for bit: the same random numbers, the division rounded once in the branch's dtype.
    Exact by construction (0, or 1/keep rounded once), so compared exactly. A float64 branch only follows a float64
    stream."""
    dp = DropPath(0.3).train()  # 1/0.7 is not a short binary fraction: each dtype rounds it differently
    stream, branch = torch.zeros(64, 5, 8, dtype=stream_dtype), torch.ones(64, 5, 8, dtype=branch_dtype)
    torch.manual_seed(3)
    own = dp(branch)
    torch.manual_seed(3)
    ahead = dp(branch, dp.scales_ahead(stream))
    assert own.dtype == ahead.dtype == branch_dtype and torch.equal(own, ahead)
    assert 0 < int((own[:, 0, 0] == 0).sum()) < 64  # both kinds of row drawn
    torch.manual_seed(3)
    naive = dp(branch, dp.scales(stream))  # drawn in the stream's dtype: 1/keep rounded there first
    if stream_dtype == torch.bfloat16 and branch_dtype != torch.bfloat16:
        assert not torch.equal(own, naive)
