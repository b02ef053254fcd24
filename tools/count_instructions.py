"""Command line of :mod:`benchmarks.kernel_instructions`: instructions per value of the fused activation and
layer-norm kernels, compiled for a CUDA architecture on this machine (no GPU needed)."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import kernel_instructions as K


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=K.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cols", default="6144", help="comma-separated row widths of GELU's kernels (g's MLP: 6144)")
    parser.add_argument("--norm-cols", default="1408", help="comma-separated row widths of the layer norm's kernel "
                                                            "(g's width: 1408; empty: none)")
    parser.add_argument("--warps", default="0", help="comma-separated warps a program (0: the library's choice)")
    parser.add_argument("--integer", action="store_true", help="also the integer-arithmetic conversions")
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability compiled for")
    parser.add_argument("--rows", type=int, default=92928, help="rows of a call (g's THUMOS step: 92928)")
    parser.add_argument("--sms", type=int, default=132, help="SMs of the card (H100 SXM: 132)")
    parser.add_argument("--clock-ghz", type=float, default=1.98, help="its boost clock (H100 SXM: 1.98)")
    args = parser.parse_args(argv)
    try:
        args.cols = [int(c) for c in args.cols.split(",")]
        args.norm_cols = [int(c) for c in args.norm_cols.split(",") if c.strip()]
        args.warps = [int(w) for w in args.warps.split(",")]
    except ValueError:
        parser.error(f"--cols {args.cols!r}, --norm-cols {args.norm_cols!r} and --warps {args.warps!r} must be "
                     "comma-separated integers")
    if any(c < 1 for c in args.cols + args.norm_cols) or any(w < 0 or w & (w - 1) for w in args.warps):
        parser.error(f"--cols and --norm-cols must be >= 1 and --warps 0 or powers of two, got {args.cols}, "
                     f"{args.norm_cols} and {args.warps}")
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    results = [K.activation_instructions(cols, backward=backward, native=native, num_warps=warps, arch=args.arch)
               for cols in args.cols for backward in (False, True) for native in (True, False)[:1 + args.integer]
               for warps in args.warps]
    results += [K.norm_instructions(cols, native=native, num_warps=warps, arch=args.arch) for cols in args.norm_cols
                for native in (True, False)[:1 + args.integer] for warps in args.warps]
    table = K.format_table(results, rows=args.rows, sms=args.sms, clock_ghz=args.clock_ghz)
    sys.stdout.write(table + "\n")
    return table


if __name__ == "__main__":
    main()
