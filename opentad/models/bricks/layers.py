"""Basic layers that configs name in ``norm_cfg`` / ``act_cfg`` dicts.

Upstream configs write ``norm_cfg=dict(type="LN", eps=1e-6)`` (mmcv's short
names). They are registered in :data:`opentad.registry.LAYERS` so that the
config check can resolve and bind them; a module that needs such a layer
builds it with ``build(norm_cfg, LAYERS, normalized_shape=C)`` (or reads the
keys it supports itself).
"""
from torch import nn

from opentad.models.bricks.dynamic_gate import GATE_TYPES, GateOptions
from opentad.registry import LAYERS

LAYERS.register_module(name=["LN", "LayerNorm"], module=nn.LayerNorm)
LAYERS.register_module(name=["GN", "GroupNorm"], module=nn.GroupNorm)
LAYERS.register_module(name=["BN", "BN1d", "BatchNorm1d"], module=nn.BatchNorm1d)
LAYERS.register_module(name=["BN3d", "BatchNorm3d"], module=nn.BatchNorm3d)
LAYERS.register_module(name=["Conv3d"], module=nn.Conv3d)  # mmcv conv_cfg of mmaction.ResNet3d
LAYERS.register_module(name=["SyncBN"], module=nn.SyncBatchNorm)
LAYERS.register_module(name=["ReLU"], module=nn.ReLU)
LAYERS.register_module(name=["GELU"], module=nn.GELU)
LAYERS.register_module(name=["SiLU", "Swish"], module=nn.SiLU)
# the gates of DyFADet's head: ``dyn_head_cfg=dict(type="GeReTanH", tau=..., dyn_type=...)`` is one GateOptions
LAYERS.register_module(name=[t for t in GATE_TYPES if t != "ReLU"], module=GateOptions)
