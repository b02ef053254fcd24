"""mmaction2's ``ResNet3d`` (I3D ResNet), registered as ``ResNet3d`` and ``mmaction.ResNet3d``.

Upstream's end-to-end AFSD configs name ``mmaction.ResNet3d``; this is that network without mmaction2:
the same module tree, so the state-dict keys of mmaction2's checkpoints (``conv1.conv.weight``,
``layer1.0.conv2.bn.running_var``, ``layer2.0.downsample.conv.weight``, ...) load unchanged, and the
same arithmetic (which conv carries the stride, paddings of the inflated kernels, where pooling happens).

Stem: ``conv1`` (``conv1_kernel``, padding ``(k - 1) // 2``, strides ``(conv1_stride_t, s, s)``), then
``maxpool`` (kernel ``(1, 3, 3)``, padding ``(0, 1, 1)``, strides ``(pool1_stride_t, s, s)``). Stages
``layer1..layerN``; after ``layer1`` ``pool2`` halves time (kernel and stride ``(2, 1, 1)``) when
``with_pool2``.

Weights: mmaction2's ``pretrained`` / ``pretrained2d`` init is never run by upstream OpenTAD (its
wrapper loads ``custom.pretrain``). Here a URL or ``torchvision://`` name is accepted and skipped with
one log line; a local file is loaded at build time (a 2D ImageNet ResNet is inflated as mmaction2's
``inflate_weights``: each 2D kernel repeated over time and divided by the temporal size, batch norms copied).
"""
from __future__ import annotations

import logging
import os
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

from opentad.models.backbones.pretrained import read_checkpoint
from opentad.models.bricks.conv_module import ConvModule3d, parse_layer_cfgs
from opentad.models.bricks.resnet3d_blocks import BasicBlock3d, Bottleneck3d, _Block3d
from opentad.registry import BACKBONES

logger = logging.getLogger(__name__)

__all__ = ["BasicBlock3d", "Bottleneck3d", "ResNet3d", "inflate_2d_weights"]  # the blocks: bricks/resnet3d_blocks.py

Inflate = Union[int, Sequence[Union[int, Sequence[int]]]]

#: depth -> (block, blocks per stage), as mmaction2
_ARCH = {
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
    101: (Bottleneck3d, (3, 4, 23, 3)),
    152: (Bottleneck3d, (3, 8, 36, 3)),
}


def _per_block(value: Union[int, Sequence[int]], blocks: int, stage: int) -> Tuple[int, ...]:
    out = (value,) * blocks if isinstance(value, int) else tuple(value)
    if len(out) != blocks:
        raise ValueError(f"ResNet3d: inflate of stage {stage} has {len(out)} entries for {blocks} blocks: {value!r}")
    return out


@BACKBONES.register_module(name=["ResNet3d", "mmaction.ResNet3d"])
class ResNet3d(nn.Module):
    """I3D ResNet (mmaction2's ``ResNet3d``): ``[B, in_channels, T, H, W]`` to the stages' features.

    With the defaults (strides ``(1, 2, 2, 2)``, stem and pool1 spatial stride 2) the last stage has
    ``base_channels * 2**(num_stages - 1) * expansion`` channels (2048 for depth 50) at ``H / 32``; time
    is divided by ``conv1_stride_t * pool1_stride_t * (2 if with_pool2) * prod(temporal_strides)``
    (each stride rounding up as ``ceil``, ``pool2`` as ``floor``).

    Args:
        depth: 18, 34 (BasicBlock3d) or 50, 101, 152 (Bottleneck3d).
        pretrained: None, a URL / ``torchvision://`` name (accepted, skipped: ``custom.pretrain`` of the
            wrapper provides the weights), or a local checkpoint loaded here.
        pretrained2d: a local ``pretrained`` is a 2D ResNet to inflate (else a 3D state dict).
        stage_blocks: blocks per stage (default: the depth's).
        in_channels, base_channels: input channels, stem width.
        num_stages: 1 to 4.
        out_indices: stages whose outputs are returned (one: a tensor; several: a tuple).
        spatial_strides, temporal_strides, dilations: per stage, on its first block.
        conv1_kernel, conv1_stride_s, conv1_stride_t: the stem conv.
        pool1_stride_s, pool1_stride_t, with_pool1: the stem max-pool.
        with_pool2: halve time after the first stage.
        style: ``"pytorch"`` (stride on the 3x3 conv) or ``"caffe"`` (on the first 1x1).
        frozen_stages: freeze the stem and stages ``1..frozen_stages`` (-1: none): no gradient, eval mode.
        inflate: per stage, 1/0 for all its blocks or one 1/0 per block.
        inflate_style: ``"3x1x1"`` or ``"3x3x3"`` (Bottleneck3d).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs; only ``Conv3d``, ``BN3d``, ``ReLU``.
        norm_eval: keep batch norms in eval mode while training.
        with_cp: checkpoint each block while autograd records.
        zero_init_residual: start each block's last batch-norm weight at 0.

    Raises:
        ValueError: an unknown depth, style or inflate_style, per-stage lists of the wrong length,
            ``out_indices`` outside the stages, a stage whose shortcut would not match its branch.
        ConfigError: an unsupported ``conv_cfg`` / ``norm_cfg`` / ``act_cfg`` (the valid ones named).
        FileNotFoundError: a local ``pretrained`` path that does not exist.
    """

    arch_settings = _ARCH

    def __init__(self, *, depth: int = 50, pretrained: Optional[str] = None, pretrained2d: bool = True,
                 stage_blocks: Optional[Sequence[int]] = None, in_channels: int = 3, num_stages: int = 4,
                 base_channels: int = 64, out_indices: Sequence[int] = (3,),
                 spatial_strides: Sequence[int] = (1, 2, 2, 2), temporal_strides: Sequence[int] = (1, 1, 1, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1), conv1_kernel: Sequence[int] = (3, 7, 7),
                 conv1_stride_s: int = 2, conv1_stride_t: int = 1, pool1_stride_s: int = 2, pool1_stride_t: int = 1,
                 with_pool1: bool = True, with_pool2: bool = True, style: str = "pytorch", frozen_stages: int = -1,
                 inflate: Inflate = (1, 1, 1, 1), inflate_style: str = "3x1x1",
                 conv_cfg: Mapping[str, Any] = dict(type="Conv3d"),
                 norm_cfg: Mapping[str, Any] = dict(type="BN3d", requires_grad=True),
                 act_cfg: Mapping[str, Any] = dict(type="ReLU", inplace=True), norm_eval: bool = False,
                 with_cp: bool = False, zero_init_residual: bool = True):
        super().__init__()
        _, norm, act = parse_layer_cfgs(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, owner="ResNet3d")
        block, default_blocks = self._check(depth, num_stages, style, inflate_style, stage_blocks, out_indices,
                                            (spatial_strides, temporal_strides, dilations))
        self.depth, self.num_stages, self.out_indices = depth, num_stages, tuple(out_indices)
        self.frozen_stages, self.norm_eval, self.with_pool1, self.with_pool2 = (
            frozen_stages, norm_eval, with_pool1, with_pool2)
        self.stage_blocks = tuple(stage_blocks) if stage_blocks is not None else default_blocks[:num_stages]
        inflations = (inflate,) * num_stages if isinstance(inflate, int) else tuple(inflate)
        if len(inflations) != num_stages:
            raise ValueError(f"ResNet3d: inflate has {len(inflations)} stages, num_stages is {num_stages}")
        kernel = tuple(conv1_kernel)
        self.conv1 = ConvModule3d(in_channels, base_channels, kernel, stride=(conv1_stride_t, conv1_stride_s,
                                  conv1_stride_s), padding=tuple((k - 1) // 2 for k in kernel), norm=norm, act=act)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool1_stride_t, pool1_stride_s, pool1_stride_s),
                                    padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        self.res_layers = []
        inplanes = base_channels
        for i, blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = self._make_layer(block, inplanes, planes, _per_block(inflations[i], blocks, i), stage=i,
                                     strides=(spatial_strides[i], temporal_strides[i]), dilation=dilations[i],
                                     style=style, inflate_style=inflate_style, norm=norm, act=act, with_cp=with_cp)
            inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.feat_dim = inplanes
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, _Block3d):
                    nn.init.zeros_(getattr(m, m.last).bn.weight)
        self._load(pretrained, pretrained2d)
        self._freeze_stages()

    @staticmethod
    def _check(depth, num_stages, style, inflate_style, stage_blocks, out_indices, per_stage):
        if depth not in _ARCH:
            raise ValueError(f"ResNet3d: depth {depth} is not one of {sorted(_ARCH)}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"ResNet3d: num_stages must be 1 to 4, got {num_stages}")
        if style not in ("pytorch", "caffe") or inflate_style not in ("3x1x1", "3x3x3"):
            raise ValueError(f"ResNet3d: style {style!r} (valid: pytorch, caffe) / inflate_style "
                             f"{inflate_style!r} (valid: 3x1x1, 3x3x3)")
        lengths = [len(v) for v in per_stage] + ([len(stage_blocks)] if stage_blocks is not None else [])
        if any(n != num_stages for n in lengths):
            raise ValueError(f"ResNet3d: spatial_strides, temporal_strides, dilations (and stage_blocks) need "
                             f"{num_stages} entries, got {lengths}")
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f"ResNet3d: out_indices {tuple(out_indices)} must index the {num_stages} stages")
        return _ARCH[depth]

    @staticmethod
    def _make_layer(block: Type[_Block3d], inplanes: int, planes: int, inflate: Tuple[int, ...], *, stage: int,
                    strides: Tuple[int, int], dilation: int, **common: Any) -> nn.Sequential:
        """One stage: the first block carries the strides and (if needed) the ``downsample`` shortcut."""
        spatial, temporal = strides
        downsample = None
        if spatial != 1 or inplanes != planes * block.expansion:  # mmaction2's rule: time alone adds none
            downsample = ConvModule3d(inplanes, planes * block.expansion, 1, stride=(temporal, spatial, spatial),
                                      norm=common["norm"], act=None)
        elif temporal != 1:
            raise ValueError(f"ResNet3d: stage {stage} has temporal stride {temporal} but no downsample shortcut "
                             f"(spatial stride 1, {inplanes} channels in and out), so its residual sum cannot match "
                             f"(mmaction2 fails in forward)")
        layers = [block(inplanes=inplanes, planes=planes, spatial_stride=spatial, temporal_stride=temporal,
                        dilation=dilation, downsample=downsample, inflate=inflate[0] == 1, **common)]
        for flag in inflate[1:]:
            layers.append(block(inplanes=planes * block.expansion, planes=planes, dilation=dilation,
                                inflate=flag == 1, **common))
        return nn.Sequential(*layers)

    def _load(self, pretrained: Optional[str], pretrained2d: bool) -> None:
        if pretrained is None:
            return
        if "://" in pretrained:
            logger.info("ResNet3d: pretrained=%r is not downloaded here; the wrapper's custom.pretrain checkpoint "
                        "provides the weights (as upstream, whose wrapper never runs mmaction2's init)", pretrained)
            return
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"ResNet3d: pretrained checkpoint {pretrained!r} not found (give a local 2D "
                                    f"ResNet state dict with pretrained2d=True, a 3D one with False, or None)")
        state_dict = read_checkpoint(pretrained)
        if pretrained2d:
            unused = inflate_2d_weights(self, state_dict)
            logger.info("ResNet3d: inflated the 2D weights of %s; not used: %s", pretrained, unused)
        else:
            result = self.load_state_dict(state_dict, strict=False)
            logger.info("ResNet3d: loaded %s (%d keys missing, %d unexpected)", pretrained,
                        len(result.missing_keys), len(result.unexpected_keys))

    def _freeze_stages(self) -> None:
        frozen = [self.conv1] if self.frozen_stages >= 0 else []
        frozen += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            module.eval()
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> "ResNet3d":
        """Switch modes; frozen stages stay in eval mode, and batch norms too with ``norm_eval``."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """``[B, in_channels, T, H, W]`` to the ``out_indices`` stages' ``[B, C_i, T_i, H_i, W_i]``.

        Returns:
            one tensor when ``out_indices`` names one stage, else a tuple in stage order.
        """
        x = self.conv1(x)
        if self.with_pool1:
            x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _names_2d(name: str) -> Tuple[str, str]:
    """The torchvision 2D names of a :class:`ConvModule3d`'s conv and norm (mmaction2's mapping)."""
    if "downsample" in name:
        return f"{name}.0", f"{name}.1"  # layerX.0.downsample.{conv,bn} <- downsample.{0,1}
    return name, name.replace("conv", "bn")  # layerX.Y.convN.{conv,bn} <- layerX.Y.{convN,bnN}


def inflate_2d_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Copy a 2D ResNet's weights into a :class:`ResNet3d` (mmaction2's ``inflate_weights``).

    Each conv weight ``[O, I, h, w]`` becomes ``[O, I, t, h, w]``: repeated ``t`` times and divided by
    ``t`` (a clip of identical frames gives the 2D response). Batch-norm parameters and buffers are
    copied. A missing or differently shaped 2D tensor leaves its 3D module as it was (logged).

    Args:
        model: the 3D network (its :class:`ConvModule3d` modules are filled).
        state_dict: torchvision-style keys (``conv1.weight``, ``bn1.*``, ``layer1.0.downsample.0.weight``).

    Returns:
        the 2D keys that were not used (e.g. ``fc.*``), sorted.
    """
    used = set()
    for name, module in model.named_modules():
        if not isinstance(module, ConvModule3d):
            continue
        conv_name, bn_name = _names_2d(name)
        weight, target = state_dict.get(f"{conv_name}.weight"), module.conv.weight
        if weight is None or tuple(weight.shape) != tuple(target.shape[:2] + target.shape[3:]):
            logger.warning("ResNet3d: 2D weight %s missing or shaped %s, not %s; left as is", conv_name,
                           None if weight is None else tuple(weight.shape), tuple(target.shape))
        else:
            with torch.no_grad():
                target.copy_(weight.unsqueeze(2).expand_as(target) / target.shape[2])
            used.add(f"{conv_name}.weight")
        bn_state = {k: state_dict.get(f"{bn_name}.{k}") for k in module.bn.state_dict()}
        if bn_state["weight"] is None or bn_state["weight"].shape != module.bn.weight.shape:
            logger.warning("ResNet3d: 2D norm %s missing or of another width; left as is", bn_name)
            continue
        with torch.no_grad():
            for key, value in bn_state.items():
                if value is not None:  # old files lack num_batches_tracked
                    getattr(module.bn, key).copy_(value)
                    used.add(f"{bn_name}.{key}")
    return sorted(set(state_dict) - used)
