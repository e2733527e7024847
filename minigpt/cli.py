"""The `minigpt` command. Subcommands:

  minigpt params     the GPT-1/2/3 model-statistics table with exact parameter counts
  minigpt info       which backends are built, and the C++ extension's threads and SIMD path
"""
import argparse
import sys

from minigpt import kernels
from minigpt.config import PRESETS, statistics_table


def cmd_params(args):
    if args.preset:
        cfg = PRESETS[args.preset].config
        print(f"{args.preset}: {cfg.num_params():,} parameters")
        return
    print(statistics_table())


def cmd_info(args):
    print("backends: numpy (always)", end="")
    if kernels._core is None:
        print(f"; cpu NOT built ({kernels._CORE_IMPORT_ERROR}); build it with `pip install .`")
        return
    print(f"; cpu {kernels.core_info()}")


def build_parser():
    parser = argparse.ArgumentParser(prog="minigpt", description="A minimal, educational GPT engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("params", help="print the GPT-1/2/3 model statistics with exact parameter counts")
    p.add_argument("--preset", choices=list(PRESETS), help="print the count of one preset only")
    p.set_defaults(func=cmd_params)
    p = sub.add_parser("info", help="show which backends are built and how many threads they use")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
