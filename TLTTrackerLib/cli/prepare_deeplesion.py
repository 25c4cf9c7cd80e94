"""Convert DeepLesion's 16-bit PNG slice folders into NIfTI volumes named and oriented like DeepLesion's own
DL_save_nifti.py output, so DLS annotations (source/target names, [x, y, z] centres) index them directly.
Existing outputs are skipped, so an interrupted run can simply be restarted.

  tlt-tracker prepare-deeplesion Images_png/ DL_info.csv deeplesion_nifti/ --only-dls test.json valid.json
"""

from __future__ import annotations

import argparse
import sys

NAME = "prepare-deeplesion"
HELP = "DeepLesion PNG folders + DL_info.csv -> NIfTI volumes as DLS annotations expect"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("png_root", help="DeepLesion Images_png folder (PPPPPP_SS_SS/NNN.png)")
    p.add_argument("dl_info", help="DeepLesion DL_info.csv")
    p.add_argument("out_dir", help="output folder for *.nii.gz")
    p.add_argument("--only-dls", nargs="+", metavar="DLS.json", help="convert only volumes these DLS files use")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..deeplesion import prepare_deeplesion
    from ..dls import load_dls

    only = None
    if args.only_dls:
        only = {name for path in args.only_dls for r in load_dls(path) for name in (r.source, r.target)}
    bar = tqdm(desc="volumes", unit="vol", file=sys.stderr)

    def progress(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.update(done - bar.n)
        bar.set_postfix_str(name)

    try:
        paths = prepare_deeplesion(args.png_root, args.dl_info, args.out_dir, only=only, progress=progress)
    finally:
        bar.close()
    print(f"{len(paths)} volumes in {args.out_dir}")
    return 0
