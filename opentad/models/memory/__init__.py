"""Memory machinery of the video backbones, applied from outside by one :class:`~.policy.MemoryPolicy`.

* :mod:`.policy`: the policy object (checkpointing, chunked backward,
  offloading, frozen-dtype storage, the frozen MLP) and where it runs the
  blocks; :mod:`.apply`: how it changes a built backbone (re-exported by :mod:`.policy`);
* :mod:`.chunked_residual`: a frozen block's attention and MLP recomputed a
  few clips at a time in backward;
* :mod:`.frozen_mlp`: the MLP of a frozen block computed in row chunks;
* :mod:`.offload`: what autograd saves waits in host memory;
* :mod:`.dequant_cache`: one dequantization of a frozen 4-bit weight per stretch of work;
* :mod:`.planner`, :mod:`.profile`, :mod:`.budget`: ``memory_budget_gib``, the fastest
  per-block plans within a budget, from a measured profile;
* :mod:`.compile`, :mod:`.cuda_graphs`: compiled blocks and CUDA graphs of the blocks;
* :mod:`.fp8_matmul` (with :mod:`.fp8_rows`, :mod:`.fp8_weights`, :mod:`.fp8_kernels`): the frozen
  layers' fp8 products (``frozen_fp8``, approximate); :mod:`.fp8_mlp` (with :mod:`.fp8_activations`): a frozen
  MLP's GELU fused with them (``fused_fp8_mlp``; kernels in :mod:`.fp8_activation_kernels`); :mod:`.fp8_norm`
  (with :mod:`.fp8_norm_block`): the blocks' layer norms fused with them (``fused_fp8_norms``; the kernel in
  :mod:`.fp8_norm_kernels`).

Import the modules themselves: this package's ``__init__`` imports nothing, so
that the quantized layers can use :mod:`.dequant_cache` without an import circle.
"""
