"""Convert DeepLesion's 16-bit PNG slice folders into NIfTI volumes named and oriented like DeepLesion's own
DL_save_nifti.py output (PPPPPP_SS_SS_aaa-bbb.nii.gz, one per contiguous run of slices), so DLS annotations
(source/target names, [x, y, z] centres) index them directly. Spacing comes from DL_info.csv. Existing outputs
are skipped, so an interrupted run can simply be restarted; inputs are only read.

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
    p.add_argument("out_dir", help="output folder for *.nii.gz (created; existing files are kept)")
    p.add_argument("--only-dls", nargs="+", metavar="DLS.json",
                   help="convert only the volumes these DLS files name as source or target")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..deeplesion import ConversionResult, prepare_deeplesion
    from ..dls import load_dls

    from ._outputs import Target, check_outputs

    reads = {"the DL_info.csv file": args.dl_info, **{f"--only-dls {p}": p for p in args.only_dls or []}}
    check_outputs(reads, [Target("out_dir", args.out_dir, "folder")])
    only = None
    if args.only_dls:
        only = {name for path in args.only_dls for r in load_dls(path) for name in (r.source, r.target)}
    bar = tqdm(desc="volumes", unit="vol", file=sys.stderr, disable=None)

    def progress(done: int, total: int, result: ConversionResult) -> None:
        bar.total = total
        bar.update(done - bar.n)
        bar.set_postfix_str(result.name, refresh=False)

    try:
        results = prepare_deeplesion(args.png_root, args.dl_info, args.out_dir, only=only, progress=progress)
    finally:
        bar.close()
    written = sum(r.status == "written" for r in results)
    print(f"{written} volumes written, {len(results) - written} already present, in {args.out_dir}")
    if only is not None and len(results) < len(only):
        print(f"{len(only) - len(results)} of {len(only)} volumes named in the DLS files have no PNG slices under "
              f"{args.png_root}", file=sys.stderr)
    return 0
