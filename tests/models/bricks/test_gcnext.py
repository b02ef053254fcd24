"""GCNeXt: k-NN graph against brute force, the block against a per-node float64 reference, upstream keys.

Error model of the block comparison: module and reference both run in float64 on the same weights and
differ only in summation order. A sum of ``n`` products is within ``n u |W||x|`` of exact (``u = 2^-53``)
and ReLU, max and addition are 1-Lipschitz, so over the 3 layers of a branch each side is within
``3 n u E`` of exact, ``E`` the same network run on ``|W|`` and ``|x|`` (the a-priori envelope) and
``n = 16`` the largest fan-in here; the test allows twice that.
Neighbour choices are compared only on data whose distances are exact (small integers) and distinct.
"""
import itertools

import pytest
import torch

from opentad.models.bricks.gcnext import GCNeXt, knn, neighbour_features
from opentad.registry import NECKS, build


def brute_force_knn(x, k):
    """Per batch and position, the k positions of smallest squared distance (Python floats), nearest first."""
    out = []
    for sample in x.double().tolist():
        columns = list(zip(*sample))  # T points of C coordinates
        rows = []
        for p in columns:
            dist = [sum((a - b) ** 2 for a, b in zip(p, q)) for q in columns]
            order = sorted(range(len(columns)), key=lambda j: dist[j])
            assert len(set(dist)) == len(dist), "precondition: distinct distances (the order is then unique)"
            rows.append(order[:k])
        out.append(rows)
    return torch.tensor(out)


def distinct_integer_points(batch, channels, length, seed):
    """Small integers (exact float32 arithmetic) with all pairwise squared distances of a point distinct."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randint(-6, 7, (batch, channels, length), generator=gen).float()
        d = ((x[:, :, :, None] - x[:, :, None, :]) ** 2).sum(1)  # [B, T, T]
        if all(len(set(row.tolist())) == length for row in d.reshape(-1, length)):
            return x


def test_knn_matches_brute_force_in_order():
    x = distinct_integer_points(2, 5, 9, seed=0)
    for k in (1, 3, 9):
        idx = knn(x, k)
        assert idx.shape == (2, 9, k)
        assert torch.equal(idx, brute_force_knn(x, k))
    assert torch.equal(knn(x, 1)[0, :, 0], torch.arange(9))  # each point is its own nearest
    with pytest.raises(ValueError, match="k=10"):
        knn(x, 10)


def test_neighbour_features_gathers_per_sample():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    idx = torch.tensor([[[1, 2], [0, 0], [3, 1], [2, 3]], [[0, 3], [1, 1], [2, 0], [3, 2]]])
    out = neighbour_features(x, idx)
    assert out.shape == (2, 3, 4, 2) and out.is_contiguous()
    for b, c, t, j in itertools.product(range(2), range(3), range(4), range(2)):
        assert out[b, c, t, j] == x[b, c, idx[b, t, j]]


def reference_block(w, groups, nn_idx, x):
    """relu(x + tconvs(x) + max over the neighbours nn_idx of sconvs([x_j, x_t])), node by node, float64."""
    batch, channels, length = x.shape
    width = w["tconvs.0.weight"].shape[0]

    def grouped(weight, v):  # block-diagonal matrix-vector product of a grouped 1x1 conv
        per = width // groups
        return torch.cat([weight[g * per:(g + 1) * per] @ v[g * per:(g + 1) * per] for g in range(groups)])

    out = torch.zeros(batch, channels, length, dtype=torch.float64)
    for b in range(batch):
        h = torch.relu(w["tconvs.0.weight"][:, :, 0] @ x[b] + w["tconvs.0.bias"][:, None])  # [W, T]
        padded = torch.nn.functional.pad(h, (1, 1))
        per = width // groups
        h2 = torch.zeros_like(h)
        for o in range(width):
            g = o // per
            window = padded[g * per:(g + 1) * per]  # [per, T + 2]
            for t in range(length):
                h2[o, t] = (w["tconvs.2.weight"][o] * window[:, t:t + 3]).sum() + w["tconvs.2.bias"][o]
        temporal = w["tconvs.4.weight"][:, :, 0] @ torch.relu(h2) + w["tconvs.4.bias"][:, None]
        for t in range(length):
            edges = []
            for j in nn_idx[b, t].tolist():
                e = torch.cat((x[b, :, j], x[b, :, t]))
                e = torch.relu(w["sconvs.0.weight"][:, :, 0, 0] @ e + w["sconvs.0.bias"])
                e = torch.relu(grouped(w["sconvs.2.weight"][:, :, 0, 0], e) + w["sconvs.2.bias"])
                edges.append(w["sconvs.4.weight"][:, :, 0, 0] @ e + w["sconvs.4.bias"])
            out[b, :, t] = torch.relu(temporal[:, t] + x[b, :, t] + torch.stack(edges).max(0).values)
    return out


def test_block_matches_a_per_node_reference():
    torch.manual_seed(0)
    block = GCNeXt(in_channels=6, out_channels=6, k=3, groups=2).double()
    x = distinct_integer_points(2, 6, 7, seed=1).double() / 4  # exact scaling keeps distances distinct
    out = block(x)
    weights = {k: v.double() for k, v in block.state_dict().items()}
    nn_idx = brute_force_knn(x, block.k)
    ref = reference_block(weights, block.groups, nn_idx, x)
    envelope = reference_block({k: v.abs() for k, v in weights.items()}, block.groups, nn_idx, x.abs())
    assert out.shape == (2, 6, 7)
    assert ((out - ref).abs() <= 2 * 3 * 16 * 2.0**-53 * envelope).all()


def test_neck_masks_output_and_returns_masks():
    torch.manual_seed(0)
    neck = build(dict(type="GCNeXt", in_channels=4, out_channels=4, k=2, groups=1), NECKS)
    x = torch.randn(2, 4, 5)
    masks = torch.tensor([[True, True, True, False, False], [True] * 5])
    out, out_masks = neck(x, masks)
    assert out_masks is masks
    assert torch.equal(out, neck(x) * masks[:, None])
    assert (out[0, :, 3:] == 0).all() and (neck(x)[0, :, 3:] != 0).any()


def test_upstream_state_dict_keys_and_residual_check():
    block = GCNeXt(in_channels=8, out_channels=8, k=3, groups=2)  # width 4 * groups = 8
    expected = {
        "tconvs.0.weight": (8, 8, 1), "tconvs.0.bias": (8,),
        "tconvs.2.weight": (8, 4, 3), "tconvs.2.bias": (8,),
        "tconvs.4.weight": (8, 8, 1), "tconvs.4.bias": (8,),
        "sconvs.0.weight": (8, 16, 1, 1), "sconvs.0.bias": (8,),
        "sconvs.2.weight": (8, 4, 1, 1), "sconvs.2.bias": (8,),
        "sconvs.4.weight": (8, 8, 1, 1), "sconvs.4.bias": (8,),
    }
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == expected
    block.load_state_dict({k: torch.zeros(s) for k, s in expected.items()}, strict=True)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        GCNeXt(in_channels=8, out_channels=4)
