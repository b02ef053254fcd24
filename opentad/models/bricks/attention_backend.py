"""Which kernel ``F.scaled_dot_product_attention`` runs for given inputs, and a log line saying so.

Torch answers itself where it can: its dispatcher (``torch._fused_sdp_choice``)
returns the backend it would run. On CUDA that answer includes what no
Python query shows before the first attention call: since torch 2.9, the
dispatcher's first call puts cuDNN's kernel first on sm90 and sm100 cards
(H100, H200, B200) where torch's cuDNN is recent enough and no environment
variable turns the preference off (``check_prefer_cudnn_attention`` in
torch's ``sdp_utils.cpp``; torch 2.11 ran cuDNN's kernels in every profiled
step of docs/benchmarks.md), while ``torch._C._get_sdp_priority_order`` still returns
the order flash, memory-efficient, math, cuDNN until then. Where the
dispatcher is missing or refuses the call's arguments, the answer is worked
out from the flags (``torch.backends.cuda.*_sdp_enabled``), the constraint
checks (``torch.backends.cuda.can_use_*_attention``) and the priority order:
the first backend enabled and usable. On CPU torch runs its own flash kernel
when the inputs allow it (enabled, no dropout, dense 4-D tensors of float,
double, bf16 or fp16 with equal head dims, non-empty sequences, contiguous
last dim), else the math path; which 3-D inputs its flash kernel takes
changed between torch releases.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Set, Tuple

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["ATTENTION_KERNELS", "check_attention_kernels", "sdpa_backend", "log_attention_backend", "prefer_attention_kernels"]

#: the ``attention_kernels`` settings: ``"torch"`` keeps torch's order of backends, ``"cudnn"`` puts cuDNN's first
ATTENTION_KERNELS = ("torch", "cudnn")
_CUDNN = 3
#: whether :func:`prefer_attention_kernels` has looked at the order in this process (it changes it at most once)
_PREFERRED = [False]

#: torch's default CUDA order (``SDPBackend`` values: 1 flash, 2 efficient, 0 math, 3 cuDNN)
_DEFAULT_ORDER = (1, 2, 0, 3)
_CPU_FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_LOGGED: Set[Tuple] = set()
#: backend found per (shape, heads, dtype, device, dropout): a forward after the first one only looks it up
_PROBED: Dict[Tuple, str] = {}


#: torch's choices (``SDPBackend`` values) as this module's names, per device type
_CHOICES = {"cpu": {0: "math", 1: "cpu-flash"}, "cuda": {0: "math", 1: "flash", 2: "efficient", 3: "cudnn"}}


def _dispatcher_choice(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> Optional[str]:
    """Torch's own answer (``torch._fused_sdp_choice``): a backend name, ``"none"`` where torch finds no usable
    backend, ``"unknown"`` for a value this module has no name for; None where torch has no dispatcher query or
    it refuses the arguments (the caller works the answer out)."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return None
    try:
        choice = int(choose(q, k, v, dropout_p=dropout_p))
    except RuntimeError:  # torch itself found no usable backend
        return "none"
    except TypeError:  # another signature, or not tensors
        return None
    return _CHOICES[q.device.type].get(choice, "unknown")


def _cpu_backend(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> str:
    choice = _dispatcher_choice(q, k, v, dropout_p)
    return _cpu_rule(q, k, v, dropout_p) if choice is None else choice


def _cpu_rule(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> str:
    """The CPU flash kernel's constraints for 4-D inputs, written out (for a torch without ``_fused_sdp_choice``);
    3-D inputs: math (what torch 2.11 does; later releases take some of them to the flash kernel)."""
    tensors = (q, k, v)
    dims = {t.dim() for t in tensors}
    flash = (  # the flag is global: torch.backends.cuda.flash_sdp_enabled; torch.backends.cpu has none of its own
        torch.backends.cuda.flash_sdp_enabled() and dropout_p == 0.0 and dims == {4}
        and not any(t.is_nested or t.stride(-1) != 1 for t in tensors) and q.dtype in _CPU_FLASH_DTYPES
        and q.shape[0] == k.shape[0] == v.shape[0] and q.shape[-1] == k.shape[-1] == v.shape[-1]
        and min(q.shape[-2], k.shape[-2]) > 0
        and q.shape[1] == k.shape[1] == v.shape[1]  # no grouped-query attention here
    )
    if flash:
        return "cpu-flash"
    return "math" if torch.backends.cuda.math_sdp_enabled() else "none"


def sdpa_backend(q: Tensor, k: Tensor, v: Tensor, *, dropout_p: float = 0.0) -> str:
    """The backend torch would choose for ``F.scaled_dot_product_attention(q, k, v, dropout_p=...)``.

    No mask, not causal (the ViT's attention).

    Args:
        q, k, v: ``[B, heads, N, head_dim]`` (or ``[B, N, head_dim]``).
        dropout_p: the attention dropout.

    Returns:
        ``"flash"``, ``"efficient"``, ``"math"`` or ``"cudnn"`` on CUDA, ``"cpu-flash"`` or ``"math"`` on CPU,
        ``"none"`` when every usable backend is disabled, ``"unknown"`` on other devices.
    """
    if q.device.type == "cpu":
        return _cpu_backend(q, k, v, dropout_p)
    if q.device.type != "cuda":
        return "unknown"
    choice = _dispatcher_choice(q, k, v, dropout_p)
    return _cuda_rule(q, k, v, dropout_p) if choice is None else choice


def _cuda_rule(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> str:
    """The first backend enabled and usable in torch's priority order (for a torch without a dispatcher query);
    before torch's first attention call on an sm90/sm100 card this order lacks its preference for cuDNN."""
    cuda = torch.backends.cuda
    try:
        params = cuda.SDPAParams(q, k, v, None, dropout_p, False, False)
    except TypeError:  # torch < 2.5: no enable_gqa
        params = cuda.SDPAParams(q, k, v, None, dropout_p, False)
    get_order = getattr(torch._C, "_get_sdp_priority_order", None)
    choices = {
        1: ("flash", cuda.flash_sdp_enabled, cuda.can_use_flash_attention),
        2: ("efficient", cuda.mem_efficient_sdp_enabled, cuda.can_use_efficient_attention),
        0: ("math", cuda.math_sdp_enabled, None),
        3: ("cudnn", cuda.cudnn_sdp_enabled, getattr(cuda, "can_use_cudnn_attention", None)),
    }
    for index in (get_order() if get_order is not None else _DEFAULT_ORDER):
        name, enabled, usable = choices.get(int(index), (None, None, None))
        if name is not None and enabled() and (name == "math" or (usable is not None and usable(params))):
            return name
    return "none"


def log_attention_backend(tokens: Tensor, attention: nn.Module, *, dtype: Optional[torch.dtype] = None) -> str:
    """Log at INFO, once per distinct line, the backend ``attention`` runs on for ``tokens``.

    The probe is laid out as the ViT's q, k and v (views of one clip's ``qkv`` output ``[1, N, 3, heads, d]``,
    permuted, the clips dimension expanded: one clip's memory, not the batch's); each input shape, dtype,
    device, dropout and backend order is probed once, later forwards look the answer up.

    Args:
        tokens: ``[B, N, C]``, the attention's input (only its shape and device are read).
        attention: a :class:`~opentad.models.bricks.vit.Attention` (its ``num_heads``, ``attn_drop_rate``
            and training mode are read).
        dtype: the dtype attention computes in (None: ``tokens``'s).

    Returns:
        the backend's name (see :func:`sdpa_backend`).
    """
    b, n, c = tokens.shape
    heads, dtype = attention.num_heads, dtype or tokens.dtype
    dropout = attention.attn_drop_rate if attention.training else 0.0
    get_order = getattr(torch._C, "_get_sdp_priority_order", None)
    order = tuple(get_order()) if get_order is not None and tokens.device.type == "cuda" else ()
    key = (b, n, c, heads, dtype, tokens.device, dropout, order)
    backend = _PROBED.get(key)
    if backend is None:
        qkv = torch.empty(1, n, 3, heads, c // heads, device=tokens.device, dtype=dtype).permute(2, 0, 3, 1, 4)
        q, k, v = (t.expand(b, heads, n, c // heads) for t in qkv)
        backend = _PROBED[key] = sdpa_backend(q, k, v, dropout_p=dropout)
    line = (backend, heads, c // heads, str(dtype).replace("torch.", ""), n, tokens.device.type)
    if line not in _LOGGED:
        _LOGGED.add(line)
        logger.info("attention: %s (heads %d, head dim %d, %s, %d tokens)", *line[:5])
    return backend


def check_attention_kernels(setting: str, owner: str = "") -> None:
    """Raises ValueError unless ``setting`` is one of :data:`ATTENTION_KERNELS` (the message, after ``owner``,
    lists them)."""
    if setting not in ATTENTION_KERNELS:
        raise ValueError(f"{owner}attention_kernels={setting!r} is not valid; valid values: "
                         f"{', '.join(map(repr, ATTENTION_KERNELS))}")


def prefer_attention_kernels(device: torch.device, setting: str = "torch") -> Optional[List[int]]:
    """With ``"cudnn"`` on CUDA, put cuDNN's attention kernel first in torch's order of SDPA backends.

    Torch 2.9 and later already put cuDNN first on sm90 and sm100 cards (H100, H200, B200) at their first attention
    call (with a recent enough cuDNN, unless an environment variable turns it off; the ViT's attention log line says
    what runs): there this changes nothing that torch would not do (the H100 runs of docs/benchmarks.md, torch 2.11,
    ran cuDNN's kernels with and without it). It matters on older torch releases, whose order puts flash,
    memory-efficient and math first (at ViT-g's shapes on an H100, ``[96, 16, 968, 88]`` bf16, cuDNN took 6.0 ms for
    forward and backward, flash 9.7 ms: run 28), and on other cards, where cuDNN's kernel can be slower than flash.
    The order is process-wide (the recomputation and the backward, which autograd runs on a thread of its own, use
    it too) and set at most once per process, logged; later changes (``sdpa_kernel``) are left alone. It must be set
    before a compiled block is traced (a compiled graph keeps the kernel it was traced with): the memory policy
    calls this before its planner profiles, the ViT before its blocks run. Inputs cuDNN refuses run on the next
    backend, as before.

    Args:
        device: where the attention runs.
        setting: one of :data:`ATTENTION_KERNELS` (``"torch"``: nothing changes).

    Returns:
        the order set (``SDPBackend`` values), or None where nothing changed.

    Raises:
        ValueError: ``setting`` not in :data:`ATTENTION_KERNELS`.
    """
    check_attention_kernels(setting)
    if setting == "torch" or device.type != "cuda" or _PREFERRED[0]:
        return None
    _PREFERRED[0] = True
    get_order = getattr(torch._C, "_get_sdp_priority_order", None)
    set_order = getattr(torch._C, "_set_sdp_priority_order", None)
    if get_order is None or set_order is None:
        logger.warning("attention_kernels=%r: this torch (%s) cannot reorder its attention backends; torch's order "
                       "stays", setting, torch.__version__)
        return None
    order = [int(i) for i in get_order()]
    if order and order[0] == _CUDNN:
        return None
    order = [_CUDNN] + [i for i in order if i != _CUDNN]
    set_order(order)
    logger.info("attention_kernels=%r: cuDNN's attention first (process-wide SDPA backend order %s)", setting, order)
    return order
