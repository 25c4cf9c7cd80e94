"""Track the lesions of many scan pairs (a cohort) listed in PAIRS.csv, one output folder per pair.

PAIRS.csv has the header pair_id,baseline,followup,lesions[,coordinate_system]; relative paths are resolved
against its folder; coordinate_system (LPS or RAS, default LPS) is the frame of CSV lesion files. Each pair
writes OUT/<pair_id>/results.json (exactly what `tlt-tracker track` writes, centres in the lesion file's frame)
and OUT/<pair_id>/registration.json; a failing pair writes OUT/<pair_id>/error.txt and the run goes on (exit
code 1 at the end). Pairs with a results.json are skipped, so a rerun resumes; --overwrite redoes them. Once every
pair has results, OUT/summary.csv gets one row per lesion. Examples:

  tlt-tracker track-batch pairs.csv --out runs/
  torchrun --nproc-per-node 8 -m TLTTrackerLib.cli track-batch pairs.csv --out runs/   # 8 GPUs, one node
  # 2 nodes x 8 GPUs, OUT on a shared file system; on node 0 and node 1 (NODE=0 / NODE=1):
  torchrun --nnodes 2 --node-rank $NODE --nproc-per-node 8 --master-addr node0 --master-port 29500 \\
      -m TLTTrackerLib.cli track-batch pairs.csv --out /shared/runs/
  tlt-tracker track-batch pairs.csv --out runs/   # afterwards, one process: skips done pairs, writes summary.csv

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) rank r takes the i-th pair (0-based, CSV order) when
i % WORLD_SIZE == r and, with --device auto or cuda, runs learned methods on cuda:LOCAL_RANK; ranks do not
communicate. A rank that finds every pair done writes summary.csv; otherwise rerun single-process to collect
it. Ranks exit 0 even when pairs failed (torchrun would stop the other ranks); the rerun retries failed pairs
and exits 1 if they fail again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError

NAME = "track-batch"
HELP = "track lesions for every scan pair of a PAIRS.csv (resumable; torchrun for many GPUs)"

logger = logging.getLogger("TLTTrackerLib.cli.track_batch")

RESULTS_NAME = "results.json"
REGISTRATION_NAME = "registration.json"
ERROR_NAME = "error.txt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..tracker import METHODS

    p.add_argument("pairs", metavar="PAIRS.csv", help="CSV: pair_id,baseline,followup,lesions[,coordinate_system]")
    p.add_argument("--out", required=True, help="output folder: <pair_id>/results.json per pair, summary.csv")
    p.add_argument("--method", default="auto", choices=[*METHODS, "auto"], help="tracking method (default: auto)")
    p.add_argument("--model", help="model file or registry name (methods tlt/auto)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto/cuda use cuda:LOCAL_RANK under torchrun")
    p.add_argument("--workers", type=int, default=0, help="lesions refined side by side (0: one per CPU core)")
    p.add_argument("--no-deformable", action="store_true",
                   help="start from the affine estimate only (refine and the TLT network), without the pair's "
                   "deformable registration (~1.4 s)")
    p.add_argument("--overwrite", action="store_true", help="redo pairs that already have results.json")


def _device_for_rank(method: str, preference: str, local_rank: int) -> str:
    """The device string for this process: ``cuda:LOCAL_RANK`` for auto/cuda when CUDA is available and the
    (resolved) method is learned; otherwise ``preference`` unchanged (other methods never touch torch)."""
    from ..tracker import LEARNED_METHODS

    if preference == "cpu" or method not in LEARNED_METHODS:
        return preference
    from ..inference import resolve_device

    return str(resolve_device(preference, local_rank))  # DeviceError for cuda without a GPU


def _write_text(path: Path, text: str) -> None:
    from ..io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _track_pair(pair: Any, folder: Path, tracker: Any) -> int:
    """Track one pair into ``folder`` exactly as ``tlt-tracker track`` would; returns the number of lesions."""
    from ..lesions import read_lesions
    from .track import track_to_file

    lesions, frame = read_lesions(pair.lesions, csv_frame=pair.coordinate_system)
    # results.json last (track_to_file writes it last): its presence marks the pair done
    _, results = track_to_file(tracker, pair.baseline, pair.followup, lesions, frame, folder / RESULTS_NAME,
                               registration_out=folder / REGISTRATION_NAME)
    return len(results)


def _one_line(exc: BaseException) -> str:
    from ..errors import TLTError

    text = str(exc) if isinstance(exc, TLTError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def _is_done(folder: Path, pair_id: str, warn: bool = False) -> bool:
    """Whether ``folder`` holds a complete results.json (a damaged one, e.g. cut short by a full disk,
    does not count: it is reported by name when ``warn`` and the pair is tracked again)."""
    from ..batch import read_results_file
    from ..errors import InputError as _InputError

    path = folder / RESULTS_NAME
    if not path.is_file():
        return False
    try:
        read_results_file(path)
    except _InputError as exc:
        if warn:
            logger.warning("%s: %s; tracking the pair again", pair_id, exc)
        return False
    return True


def _check_paths(pairs: list, out: Path, pairs_csv: str) -> None:
    """Refuse, before any work, outputs that would overwrite an input or cannot be written."""
    from ._outputs import Target, check_outputs

    reads: dict[str, Any] = {"the pairs file": pairs_csv}
    for p in pairs:
        reads.update({f"the baseline of {p.pair_id}": p.baseline, f"the follow-up of {p.pair_id}": p.followup,
                      f"the lesion file of {p.pair_id}": p.lesions})
    from ..batch import SUMMARY_NAME

    targets = [Target("--out", out, "folder"), Target("--out", out / SUMMARY_NAME)]
    for p in pairs:
        targets += [Target(f"--out (pair {p.pair_id})", out / p.pair_id, "folder")]
        targets += [Target(f"--out (pair {p.pair_id})", out / p.pair_id / name)
                    for name in (RESULTS_NAME, REGISTRATION_NAME, ERROR_NAME)]
    check_outputs(reads, targets)


def _process(pair: Any, folder: Path, tracker: Any, overwrite: bool) -> str:
    """Track one pair unless done; a failure writes ``folder/error.txt``. Returns "done", "skipped" or "failed"."""
    from ..errors import TLTError

    if _is_done(folder, pair.pair_id, warn=True) and not overwrite:
        logger.debug("%s: %s exists, skipped", pair.pair_id, RESULTS_NAME)
        return "skipped"
    try:
        n = _track_pair(pair, folder, tracker)
    except Exception as exc:  # TLTError: the user's input; anything else: a bug, logged with its traceback
        message = _one_line(exc)
        (folder / RESULTS_NAME).unlink(missing_ok=True)  # an --overwrite that failed leaves no stale results
        _write_text(folder / ERROR_NAME, message + "\n")
        if isinstance(exc, TLTError):
            logger.error("%s failed: %s", pair.pair_id, message)
        else:
            logger.exception("%s failed: %s", pair.pair_id, message)
        return "failed"
    (folder / ERROR_NAME).unlink(missing_ok=True)  # from an earlier failed attempt
    logger.info("%s: %d lesions tracked", pair.pair_id, n)
    return "done"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..batch import SUMMARY_NAME, dist_env, read_pairs, shard, summary_text
    from ..tracker import LesionTracker

    pairs = read_pairs(args.pairs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    _check_paths(pairs, out, args.pairs)
    rank, world, local_rank = dist_env()
    mine = shard(pairs, rank, world)
    method = LesionTracker(method=args.method).resolved_method()
    tracker = LesionTracker(method=args.method, model=args.model,
                            device=_device_for_rank(method, args.device, local_rank), workers=args.workers,
                            deformable=not args.no_deformable)
    tracker.check_model()  # a missing or bad model fails once, here, not once per pair
    tracker.wait_for_model()
    where = f"rank {rank}/{world}: " if world > 1 else ""
    logger.info("%s%d of %d pairs, method %s, device %s", where, len(mine), len(pairs), method, tracker.device)

    counts = Counter({"done": 0, "skipped": 0, "failed": 0})
    with logging_redirect_tqdm():  # log lines above the bar, not through it
        for pair in tqdm(mine, desc=f"rank {rank}" if world > 1 else "pairs", unit="pair", file=sys.stderr,
                         disable=getattr(args, "quiet", False) or not sys.stderr.isatty()):
            counts[_process(pair, out / pair.pair_id, tracker, args.overwrite)] += 1

    pending = [p.pair_id for p in pairs if not _is_done(out / p.pair_id, p.pair_id)]
    if pending:
        logger.info("%s not written: %d of %d pairs have no results.json yet (failed, or on another rank)",
                    SUMMARY_NAME, len(pending), len(pairs))
    else:
        _write_text(out / SUMMARY_NAME, summary_text(pairs, out, RESULTS_NAME))
        logger.info("wrote %s", out / SUMMARY_NAME)
    print(f"track-batch: {where}{len(mine)} pairs: {counts['done']} done, {counts['skipped']} skipped, "
          f"{counts['failed']} failed" + ("" if pending else f"; summary {out / SUMMARY_NAME}"))
    if counts["failed"] and world > 1:  # a non-zero exit would make torchrun kill the other ranks
        logger.warning("%s%d pairs failed (see their error.txt); exiting 0 so that torchrun keeps the other "
                       "ranks running", where, counts["failed"])
        return 0
    return 1 if counts["failed"] else 0
