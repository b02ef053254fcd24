"""Re-save a trusted legacy checkpoint so that it loads weights-only (no code can run when it is read).

Every tool here reads ``.pth`` files with ``torch.load(weights_only=True)`` and
refuses a file that would need to unpickle other Python objects (a crafted
file runs code when unpickled). For a legacy file you trust (e.g. one with an
``argparse.Namespace`` or a logger's history in its metadata), convert it once::

    python tools/model_converters/make_weights_only.py legacy.pth clean.pth --trust-pickle

``--trust-pickle`` is the explicit opt-in: the input is unpickled in full
(anything stored in it runs). The output keeps every tensor and plain value
(numpy arrays become tensors) and leaves out other objects, which are listed.
It is checked to load weights-only before the tool reports success.
"""
import argparse
import logging
import os
import sys

from opentad.utils.checkpoint import atomic_save
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError, plain_copy, torch_load


def convert(in_file: str, out_file: str, *, trust_pickle: bool) -> list:
    """Write ``out_file`` with the tensors and plain values of ``in_file``; returns what was left out.

    Raises:
        UntrustedFileError: ``in_file`` needs full unpickling and ``trust_pickle`` is False.
        UnreadableFileError, FileNotFoundError: ``in_file`` cannot be read.
    """
    try:
        obj = torch_load(in_file, what="input")
    except UntrustedFileError as exc:
        if not trust_pickle:
            raise UntrustedFileError(
                f"input {in_file} needs full unpickling ({exc.refused}), which can run code stored in it; "
                "add --trust-pickle only if you trust the file", path=in_file, refused=exc.refused,
            ) from None
        obj = torch_load(in_file, what="input", trust_pickle=True)
    kept, dropped = plain_copy(obj)
    if not isinstance(kept, dict):
        raise UnreadableFileError(f"input {in_file} holds a {type(obj).__name__}, not a dict checkpoint")
    atomic_save(kept, out_file)
    torch_load(out_file, what="output")  # weights-only: raises if anything unsafe were left
    return dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("in_file", help="the legacy checkpoint")
    parser.add_argument("out_file", help="the weights-only checkpoint to write")
    parser.add_argument(
        "--trust-pickle", action="store_true",
        help="unpickle IN_FILE in full (it can run code stored in the file): only for a file you trust",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if os.path.abspath(args.in_file) == os.path.abspath(args.out_file):
        parser.error("OUT_FILE must differ from IN_FILE (the original is kept)")
    try:
        dropped = convert(args.in_file, args.out_file, trust_pickle=args.trust_pickle)
    except (FileNotFoundError, UntrustedFileError, UnreadableFileError) as exc:
        sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        return 1
    if dropped:
        print(f"left out {len(dropped)} non-tensor object(s): {', '.join(dropped[:10])}")
    print(f"wrote {args.out_file}; it loads with torch.load(weights_only=True)")
    return 0


if __name__ == "__main__":
    status = main()
    if status:  # exit only on failure (runpy callers get a plain return)
        sys.exit(status)
