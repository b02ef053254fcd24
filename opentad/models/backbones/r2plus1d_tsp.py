"""TSP's R(2+1)D video ResNet, ``ResNet2Plus1d_TSP``: the backbone of upstream's end-to-end ETAD.

The network is torchvision's VideoResNet with R(2+1)D convolutions (Tran et
al., CVPR 2018) as TSP (Alwassel et al., ICCVW 2021) trained it, written here
without importing ``torchvision.models.video``. Module tree and state-dict
keys are upstream OpenTAD's (``opentad/models/backbones/r2plus1d_tsp.py``)::

    stem.{0,3}        Conv3d 3->45 (1x7x7, stride 1x2x2), Conv3d 45->64 (3x1x1); BatchNorms stem.{1,4}
    layer{1..4}.i     BasicBlock: conv1.0 (Conv2Plus1D), conv1.1 (BN), conv2.0, conv2.1, downsample.{0,1}
    Conv2Plus1D       0: Conv3d in->mid (1x3x3, stride 1xsxs), 1: BN(mid), 3: Conv3d mid->out (3x1x1, stride sx1x1)

with ``mid = (in * out * 27) // (in * 9 + 3 * out)`` computed from each
Conv2Plus1D's own input and output widths (upstream recomputes it; torchvision
passes the block's first value to both convolutions). Stages are 64, 128, 256
and 512 wide; stages 2-4 halve time, height and width (``ceil``). Every
BatchNorm has Caffe2's ``eps=1e-3`` and ``momentum=0.9``, as upstream.

What trains is settled at construction (:meth:`ResNet2Plus1d_TSP.freeze`),
not in ``forward`` as upstream, with the same result: the stem and the first
``frozen_stages`` stages are frozen and stay in eval mode, and with
``norm_eval`` every BatchNorm stays in eval mode (its affine parameters still
train unless the wrapper's ``custom.norm_eval`` freezes them).
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from opentad.models.backbones.video_backbone import VideoBackbone
from opentad.models.memory.policy import MemoryPolicy
from opentad.registry import BACKBONES
from opentad.utils.safe_load import torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "midplanes",
    "Conv2Plus1D",
    "R2Plus1dStem",
    "BasicBlock2Plus1D",
    "tsp_backbone_state_dict",
    "read_tsp_checkpoint",
    "ResNet2Plus1d_TSP",
]

#: width of the four stages
STAGE_PLANES = (64, 128, 256, 512)


def midplanes(in_planes: int, out_planes: int) -> int:
    """Width between the spatial and the temporal convolution of a (2+1)D conv.

    Chosen so that the pair has about as many weights as one 3x3x3 convolution:
    ``(in * out * 27) // (in * 9 + 3 * out)``.
    """
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


def _bn(channels: int) -> nn.BatchNorm3d:
    """BatchNorm with Caffe2's constants (TSP's weights were trained with them)."""
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=0.9)


class Conv2Plus1D(nn.Sequential):
    """A 1x3x3 spatial convolution, BN, ReLU, then a 3x1x1 temporal one (no bias).

    Args:
        in_planes: input channels.
        out_planes: output channels.
        stride: stride in time, height and width (1 or 2).

    Shapes: ``[B, in, T, H, W] -> [B, out, ceil(T/s), ceil(H/s), ceil(W/s)]``.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1):
        mid = midplanes(in_planes, out_planes)
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            _bn(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class R2Plus1dStem(nn.Sequential):
    """``[B, 3, T, H, W] -> [B, 64, T, ceil(H/2), ceil(W/2)]``: 1x7x7 to 45 channels, then 3x1x1 to 64."""

    def __init__(self):
        super().__init__(
            nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            _bn(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            _bn(64),
            nn.ReLU(inplace=True),
        )


class BasicBlock2Plus1D(nn.Module):
    """Two (2+1)D convolutions with BN and a residual: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    Args:
        in_planes: input channels.
        planes: output channels.
        stride: stride of the first convolution and of the shortcut.

    The shortcut is a strided 1x1x1 convolution and BN (``downsample``)
    when the stride or the width changes, else the identity.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(Conv2Plus1D(in_planes, planes, stride), _bn(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes), _bn(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv3d(in_planes, planes, 1, stride=stride, bias=False), _bn(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def tsp_backbone_state_dict(model_state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Upstream's mapping of a TSP checkpoint's ``model`` onto this backbone.

    Keys containing ``fc`` (TSP's classifier heads) are dropped and the first
    nine characters (``features.``, TSP's name of the backbone) are cut off.
    """
    return {key[9:]: value for key, value in model_state.items() if "fc" not in key}


def read_tsp_checkpoint(path: str) -> Dict[str, Tensor]:
    """The backbone weights of a TSP checkpoint file (``{"model": state_dict, ...}``), read weights-only.

    Raises:
        FileNotFoundError: no such file (the message names the config key).
        UntrustedFileError, UnreadableFileError: see :func:`opentad.utils.safe_load.torch_load`.
        ValueError: the file holds no ``model`` state dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"ResNet2Plus1d_TSP: pretrained checkpoint not found: {path} (config key model.backbone.backbone."
            "pretrained; put TSP's released r2plus1d_34 weights there, or set pretrained=None for random weights)"
        )
    ckpt = torch_load(path, what="ResNet2Plus1d_TSP pretrained", allowed=[argparse.Namespace])
    state = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping) or not any(isinstance(v, Tensor) for v in state.values()):
        found = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ValueError(f"{path}: no 'model' state dict (TSP checkpoints are {{'model': ...}}); found {found}")
    return tsp_backbone_state_dict(state)


@BACKBONES.register_module(name=["ResNet2Plus1d_TSP", "mmaction.ResNet2Plus1d_TSP"])
class ResNet2Plus1d_TSP(VideoBackbone):
    """R(2+1)D ResNet of TSP (``layers=[3, 4, 6, 3]``: R(2+1)D-34), returning the last stage's feature map.

    Args:
        layers: blocks in each of the four stages.
        pretrained: TSP checkpoint to load (``{"model": ...}`` with ``features.*``
            keys, mapped by :func:`tsp_backbone_state_dict`, loaded strictly), or
            None for random weights (kaiming-normal convolutions, as torchvision).
        norm_eval: keep every BatchNorm in eval mode (running statistics frozen).
        with_cp: checkpoint each block whose input requires grad (upstream's
            ``BasicBlockCP``), through the backbone's
            :class:`~opentad.models.memory.policy.MemoryPolicy`.
        frozen_stages: -1: everything trains; 0: the stem is frozen; k >= 1:
            the stem and stages 1..k are frozen (and stay in eval mode).

    Shapes: ``[B, 3, T, H, W] -> [B, 512, t, h, w]`` with
    ``t = ceil(T / 8)``, ``h = ceil(H / 16)``, ``w = ceil(W / 16)`` (the stem
    halves height and width, stages 2-4 halve all three, each rounding up).

    Raises:
        ValueError: ``layers`` not four positive counts, ``frozen_stages`` outside
            ``[-1, 4]``, or a checkpoint that does not fit (missing, unexpected or
            mis-shaped keys, named with the file) or without a ``model`` state dict.
        FileNotFoundError: ``pretrained`` names no file.
        UntrustedFileError: the file needs full unpickling (``tools/model_converters/make_weights_only.py``).
    """

    def __init__(
        self,
        *,
        layers: Sequence[int] = (3, 4, 6, 3),
        pretrained: Optional[str] = None,
        norm_eval: bool = True,
        with_cp: bool = False,
        frozen_stages: int = -1,
    ):
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"ResNet2Plus1d_TSP: layers={list(layers)} must be four block counts >= 1")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"ResNet2Plus1d_TSP: frozen_stages={frozen_stages} must be in [-1, 4]")
        state = read_tsp_checkpoint(pretrained) if pretrained is not None else None  # a bad file fails first
        self.pretrained = pretrained
        self.norm_eval = norm_eval
        self.frozen_stages = frozen_stages
        self.stem = R2Plus1dStem()
        in_planes = 64
        for index, (planes, blocks) in enumerate(zip(STAGE_PLANES, layers)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock2Plus1D(in_planes, planes, stride)]
            stage += [BasicBlock2Plus1D(planes, planes) for _ in range(int(blocks) - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            in_planes = planes
        self._init_weights()
        self.memory_policy = MemoryPolicy(checkpoint=with_cp, checkpoint_needs_input_grad=True)
        if state is not None:
            self._load(pretrained, state)
        self.freeze()

    @property
    def stages(self) -> Sequence[nn.Module]:
        """``layer1`` .. ``layer4``."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def _init_weights(self) -> None:
        """torchvision's VideoResNet init: kaiming-normal (fan_out, relu) convolutions, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _load(self, path: str, state: Mapping[str, Tensor]) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or shapes:
            raise ValueError(
                f"ResNet2Plus1d_TSP: {path} does not fit layers={[len(s) for s in self.stages]}: "
                f"{len(missing)} missing {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, "
                f"{len(shapes)} mis-shaped {shapes[:5]}"
            )
        self.load_state_dict(state)
        logger.info("ResNet2Plus1d_TSP: loaded %d tensors from %s", len(state), path)

    def _frozen_modules(self) -> Sequence[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.stages[: self.frozen_stages]]

    def freeze(self) -> None:
        """The stem and the first ``frozen_stages`` stages stop training; the rest trains."""
        super().freeze()
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "ResNet2Plus1d_TSP":
        """Switch modes; frozen stages, and with ``norm_eval`` every BatchNorm, stay in eval mode."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def set_memory_policy(self, policy: MemoryPolicy) -> None:
        """Run the blocks as ``policy`` says (``checkpoint``; called by ``apply_memory_policy``)."""
        self.memory_policy = policy

    def _block(self, block: nn.Module, x: Tensor) -> Tensor:
        policy = self.memory_policy
        if policy.checkpoint and torch.is_grad_enabled() and (x.requires_grad or not policy.checkpoint_needs_input_grad):
            return cp.checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B, 3, T, H, W]`` to the last stage's map ``[B, 512, t, h, w]`` (see the class docstring).

        Raises:
            ValueError: ``x`` is not ``[B, 3, T, H, W]``.
        """
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"ResNet2Plus1d_TSP: frames must be [B, 3, T, H, W], got {tuple(x.shape)}")
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:
                x = self._block(block, x)
        return x
