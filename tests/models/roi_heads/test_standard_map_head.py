"""StandardProposalMapHead: the three parts compose (extractor -> head), keys as upstream, losses reach all."""
import torch

from opentad.registry import ROI_HEADS, build

CFG = dict(
    type="StandardProposalMapHead",
    proposal_generator=dict(type="DenseProposalMap", tscale=8, dscale=8),
    proposal_roi_extractor=dict(type="BMNExtractor", in_channels=6, hid_channels=4, roi_channels=5,
                                out_channels=3, tscale=8, dscale=8, num_sample=4),
    proposal_head=dict(type="PEMHead", in_channels=3, feat_channels=4, num_convs=1, num_classes=2,
                       loss=dict(cls_loss=dict(type="BalancedBCELoss", pos_thresh=0.9),
                                 reg_loss=dict(type="BalancedL2Loss", weight=5.0))),
)


def test_test_map_is_the_head_of_the_extracted_features():
    head = build(CFG, ROI_HEADS)
    x = torch.randn(2, 6, 8)
    expected = head.proposal_head.head(head.proposal_roi_extractor(x))
    assert torch.equal(head.forward_test(x, None), expected)
    assert {k.split(".")[0] for k in head.state_dict()} == {"proposal_roi_extractor", "proposal_head"}


def test_training_losses_reach_every_parameter(seeded):
    head = build(CFG, ROI_HEADS)
    # With 3 to 5 channels, a random init often leaves every unit of one ReLU layer dead for the whole
    # input (about 1 init in 11), and nothing before it gets a gradient. Positive biases keep the
    # extractor's ReLUs open, so a zero gradient can only mean a parameter the losses do not reach.
    with torch.no_grad():
        for module in head.proposal_roi_extractor.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.fill_(1.0)
    x = torch.randn(2, 6, 8, requires_grad=True)
    losses = head.forward_train(x, None, [torch.tensor([[1.0, 4.0]]), torch.tensor([[2.0, 7.0]])], None)
    assert set(losses) == {"loss_cls", "loss_reg"}
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
