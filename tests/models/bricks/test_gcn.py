"""VSGN's graph brick (opentad/models/bricks/gcn.py) against brute-force references written here.

Error model: the references run in float64 with explicit loops; the module runs in float32. A dot product
of n terms rounds within ``n * 2^-24 * sum |w_k v_k|`` (plus ``2^-24 |b|`` for the bias), which bounds each
edge feature; max and mean over the edges do not enlarge that bound. Neighbour sets are compared exactly
after checking that the data leave a margin between the k-th and the next distance far above float32's
rounding of the distances.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.gcn import NeighConv, knn_indices, xGN

EPS32 = 2.0 ** -24


def brute_force_neighbours(x, k):
    """Per (video, step): the k steps of smallest squared distance, by loops in float64; and the margin."""
    x = x.double()
    batch, _, steps = x.shape
    result, margin = [], float("inf")
    for b in range(batch):
        rows = []
        for i in range(steps):
            dist = [float(((x[b, :, j] - x[b, :, i]) ** 2).sum()) for j in range(steps)]
            order = sorted(range(steps), key=lambda j: dist[j])
            rows.append(order[:k])
            margin = min(margin, dist[order[k]] - dist[order[k - 1]]) if k < steps else margin
        result.append(rows)
    return result, margin


def test_knn_matches_brute_force_and_orders_nearest_first():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12)
    idx = knn_indices(x, 4)
    reference, margin = brute_force_neighbours(x, 4)
    assert margin > 1e-3  # far above float32's rounding of distances of order 10
    assert idx.shape == (2, 12, 4)
    for b, i in itertools.product(range(2), range(12)):
        assert set(idx[b, i].tolist()) == set(reference[b][i])
        assert idx[b, i, 0] == i  # the step itself, at distance 0
        dists = [float(((x[b, :, j] - x[b, :, i]) ** 2).sum()) for j in idx[b, i].tolist()]
        assert dists == sorted(dists)


def test_knn_rejects_more_neighbours_than_steps():
    with pytest.raises(ValueError, match="5 neighbours"):
        knn_indices(torch.randn(1, 3, 4), 5)


def reference_neighconv(conv, x, mode, agg, weighted):
    """Loop over centres and their brute-force neighbours in float64; also the rounding bound of each output."""
    w, bias = conv.mlp.weight.double(), conv.mlp.bias.double()
    x64 = x.double()
    neighbours, _ = brute_force_neighbours(x, conv.num_neigh)
    out = torch.zeros_like(x64)
    bound = torch.zeros_like(x64)
    for b, i in itertools.product(range(x.shape[0]), range(x.shape[2])):
        centre = x64[b, :, i]
        edges, bounds = [], []
        for j in neighbours[b][i]:
            first = x64[b, :, j] if mode == "feat_ctr" else x64[b, :, j] - centre
            v = torch.cat((first, centre))
            edge = w @ v + bias
            if weighted:
                edge = edge * (x64[b, :, j] @ centre) / (x64[b, :, j].norm() * centre.norm())
            edges.append(edge)
            bounds.append((len(v) + 2) * EPS32 * (w.abs() @ v.abs() + bias.abs()))
        stacked = torch.stack(edges)
        out[b, :, i] = stacked.max(0)[0] if agg == "max" else stacked.mean(0)
        bound[b, :, i] = torch.stack(bounds).max(0)[0] * (2 if weighted else 1)
    return out, bound


@pytest.mark.parametrize("mode,agg,weighted", [
    ("feat_ctr", "max", False),  # the THUMOS configs
    ("dif_ctr", "mean", False),
    ("feat_ctr", "mean", True),
])
def test_neighconv_matches_loop_reference(mode, agg, weighted):
    torch.manual_seed(1)
    conv = NeighConv(6, num_neigh=3, nfeat_mode=mode, agg_type=agg, edge_weight="true" if weighted else "false")
    x = torch.randn(2, 6, 10)
    expected, bound = reference_neighconv(conv, x, mode, agg, weighted)
    got = conv(x).double()
    assert got.shape == (2, 6, 10)
    assert ((got - expected).abs() <= bound + 1e-12).all(), float(((got - expected).abs() - bound).max())


@pytest.mark.parametrize("option", [dict(nfeat_mode="feat"), dict(agg_type="sum"), dict(edge_weight=True)])
def test_neighconv_rejects_unknown_options(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        NeighConv(4, **option)


def test_xgn_is_conv_plus_graph_then_masked_max_pool():
    torch.manual_seed(2)
    block = xGN(4, stride=2, gcn_kwargs=dict(num_neigh=3))
    assert sorted(k for k in block.state_dict()) == [
        "nconv1.mlp.bias", "nconv1.mlp.weight", "tconv1.bias", "tconv1.weight"
    ]
    x = torch.randn(1, 4, 10)
    mask = torch.tensor([[True] * 6 + [False] * 4])
    out, out_mask = block(x, mask)
    # output step i pools input steps 2i-1, 2i, 2i+1: window [5, 6, 7] holds valid step 5 (nearest sampling
    # would read step 6, invalid); window [7, 8, 9] holds none
    assert out_mask.tolist() == [[True, True, True, True, False]]
    pre = torch.relu(F.conv1d(x, block.tconv1.weight, block.tconv1.bias, padding=1) + block.nconv1(x))
    expected = F.max_pool1d(pre, 3, stride=2, padding=1) * out_mask[:, None]
    assert torch.equal(out, expected)


def test_xgn_needs_a_downsampling_stride():
    with pytest.raises(ValueError, match="stride"):
        xGN(4, stride=1)
