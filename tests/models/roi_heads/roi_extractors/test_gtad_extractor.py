"""GTADExtractor: hand-worked anchors, a cell-by-cell reference, compiled op vs fallback, upstream keys.

Error model of the reference comparison: both sides run in float64 and take the same RoI-aligned
values (the op rounds features and rois to float16 and pools in float64, exact in both); the context
mean and the 1x1 convolution differ only in summation order, so a cell's output is within
``2 n u E`` of the reference (``n`` = the ``C (roi_size + context_size)`` terms of the convolution plus
the ``k`` terms of the mean, ``u = 2^-53``, ``E`` the sum of the absolute terms; the test evaluates it).
"""
import pytest
import torch

from opentad.models.bricks.gcnext import knn, neighbour_features
from opentad.models.roi_heads.roi_extractors import Align1DLayer
from opentad.models.roi_heads.roi_extractors.gtad_extractor import extended_anchors
from opentad.ops import select_op
from opentad.registry import ROI_HEADS, build

SMALL = dict(type="GTADExtractor", in_channels=4, out_channels=5, tscale=6, dscale=3, k=2, roi_size=2,
             context_size=3, prop_extend_ratio=0.5)


def test_anchors_by_hand():
    anchors = extended_anchors(tscale=3, dscale=2, extend_ratio=0.5)
    # duration 1: [t - 0.5, t + 1.5]; duration 2: [t - 1, t + 3] while t + 2 <= 3, else [0, 0]
    assert anchors.dtype == torch.float32
    assert anchors.tolist() == [
        [[-0.5, 1.5], [0.5, 2.5], [1.5, 3.5]],
        [[-1.0, 3.0], [0.0, 4.0], [0.0, 0.0]],
    ]


def reference(extractor, x):
    """Each cell (b, d, t) aligned on its own, flattened channel-major, then the 1x1 conv as a dot product."""
    y = extractor.gcnext(x)
    context = neighbour_features(y, knn(y, extractor.k)).mean(-1)
    weight = extractor.conv2d[0].weight[:, :, 0, 0]
    bias = extractor.conv2d[0].bias
    dscale, tscale = extractor.anchors.shape[:2]
    out = torch.zeros(x.shape[0], weight.shape[0], dscale, tscale, dtype=x.dtype)
    envelope = torch.zeros_like(out)
    for b in range(x.shape[0]):
        for d in range(dscale):
            for t in range(tscale):
                start, end = extractor.anchors[d, t].tolist()
                if t + d + 1 > tscale:
                    assert start == end == 0.0
                roi = torch.tensor([[b, start, end]], dtype=x.dtype)
                inner = Align1DLayer(extractor.align_inner.feature_dim)(y, roi)[0]  # [C, roi_size]
                ctx = Align1DLayer(extractor.align_context.feature_dim)(context, roi)[0]  # [C, context_size]
                v = torch.cat((inner, ctx), dim=1).flatten()
                out[b, :, d, t] = torch.relu(weight @ v + bias)
                envelope[b, :, d, t] = weight.abs() @ v.abs() + bias.abs()
    return out, envelope


def test_forward_matches_a_cell_by_cell_reference():
    torch.manual_seed(0)
    extractor = build(SMALL, ROI_HEADS).double()
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    out = extractor(x)
    assert out.shape == (2, 5, 3, 6)
    with torch.no_grad():
        ref, envelope = reference(extractor, x)
    n = 4 * (2 + 3) + 2
    assert ((out - ref).abs() <= 2 * n * 2.0**-53 * (envelope + ref.abs().max())).all()


@pytest.mark.skipif(select_op("align1d_cpu", "auto") is None, reason="compiled align1d_cpu is not built")
def test_compiled_op_and_fallback_agree_inside_the_extractor():
    torch.manual_seed(0)
    extractor = build(SMALL, ROI_HEADS)
    x = torch.randn(2, 4, 6)
    outputs = []
    for backend in ("compiled", "torch"):
        extractor.align_inner.backend = extractor.align_context.backend = backend
        outputs.append(extractor(x))
    # the forwards are the same arithmetic (their backwards are compared in tests/ops/test_native_ops.py)
    assert torch.equal(outputs[0], outputs[1])


def test_upstream_state_dict_keys_and_length_check():
    extractor = build(dict(type="GTADExtractor", in_channels=64, out_channels=32, tscale=8, dscale=4,
                           roi_size=16, context_size=16), ROI_HEADS)
    expected = {
        "gcnext.tconvs.0.weight": (128, 64, 1), "gcnext.tconvs.0.bias": (128,),
        "gcnext.tconvs.2.weight": (128, 4, 3), "gcnext.tconvs.2.bias": (128,),
        "gcnext.tconvs.4.weight": (64, 128, 1), "gcnext.tconvs.4.bias": (64,),
        "gcnext.sconvs.0.weight": (128, 128, 1, 1), "gcnext.sconvs.0.bias": (128,),
        "gcnext.sconvs.2.weight": (128, 4, 1, 1), "gcnext.sconvs.2.bias": (128,),
        "gcnext.sconvs.4.weight": (64, 128, 1, 1), "gcnext.sconvs.4.bias": (64,),
        "conv2d.0.weight": (32, 64 * 32, 1, 1), "conv2d.0.bias": (32,),
    }
    assert {k: tuple(v.shape) for k, v in extractor.state_dict().items()} == expected
    with pytest.raises(ValueError, match="7 positions, the map 8"):
        extractor(torch.zeros(1, 64, 7))
