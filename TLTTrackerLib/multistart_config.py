"""Settings of :func:`~.multistart.track_point`, one lesion's multi-start tracking, each with the measurement that
chose it (the algorithm and the terms it uses: :mod:`.multistart`), and the back-tracking check's refinement."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .coarse_search import CoarseConfig
from .lesion_centre import LesionCentreConfig
from .refine import RefineConfig
from .visible_lesion import VisibleSnapConfig


def backtrack_config(refine: RefineConfig) -> RefineConfig:
    """The back-tracking check needs only the first level (local affine + 4 mm demons): a quarter of the cost;
    its local affine samples 30 % of the region (3x faster; the check is good to a few mm anyway)."""
    return replace(refine, levels=refine.levels[:1], affine_sampling=min(refine.affine_sampling, 0.3))


BACKTRACK_CONFIG = backtrack_config(RefineConfig())  # the default check (re-exported by .tracker)
START_KINDS = ("field_shape", "affine", "field")  # the names of MultiStartConfig.registration_starts


@dataclass(frozen=True)
class MultiStartConfig:
    """``coarse``: the coarse search (``None``: off, only the affine start and the caller's candidates);
    ``min_jump_mm``: a coarse peak nearer than this to a start already listed adds nothing; ``max_starts``:
    refinements at most (the affine start counts); ``accept_miss_mm``: a result that back-tracks this close
    to the baseline centre ends the search (no coarse start is tried; on the tuning pairs this skipped 28 of 57
    second refinements and changed 4 results by -0.41..+0.08 mm); ``accept_min_ncc``: a small lesion's result
    (r ≤ ``snap_max_radius_mm``) ends it only where the lesion's template matches there at least this well (NCC;
    0: any): two nodules' first results, 7 mm off on other tissue, tracked back within 1.8 mm at NCC 0.01–0.05;
    no first result within a nodule's radius matched below 0.3 (docs/benchmarks.md §20); ``edge_margin_mm``:
    see :mod:`.multistart`; ``candidates_first``: see :mod:`.multistart` (``tlt+refine`` lists the network's
    point after the registration's starts: first, it lost 3 tuning lesions, docs/benchmarks.md §13);
    ``registration_starts``: with a pair field, the registration's starts in the order refined (module
    docstring; each name at most once). The first level of ``"affine"`` and ``"field"`` starts from the region's
    local affine: capture range, but a bias where the motion varies within the ±40 mm region (near bone, at the
    body wall): from the exact centre it moved 17 of 180 tuning lesions beyond their radius, without it 4
    (docs/benchmarks.md §11, §19). ``"field_shape"`` starts from the pair field's displacement around D(c)
    (:func:`~.field_starts.field_prior`), which keeps a good start where it is. ``("field_shape", "affine",
    "field")`` against §11–§18's ``("affine", "field", "field_shape")``: tuning seeds 0–3 188 = 188 of 199 hits
    (MED 1.68 → 1.64 mm), seeds 4–9 187 → 191 of 226 (§19). ``field_backtrack``: start the back-tracking check
    at the field's inverse, else at the affine's (the affine's lost large-motion 0.750 -> 0.607 CPM@10mm on
    those seeds);
    ``snap_mm``: a lesion of radius ≤ ``snap_max_radius_mm`` ends at its own template's best match within this
    distance of the result (:func:`~.lesion_template.snap_to_lesion`; 0: off): a 1.5 mm nodule counts only
    within 1.5 mm, finer than the region registration places it. Larger lesions are left: a grown blob's
    template fits anywhere on a plateau (tuning seeds 0–3 with r ≤ 5 snapped: 5 blobs lost).
    ``lesion_weight``: weight of the lesion template's NCC in the selection score (:mod:`.selection`; 0: the
    plain miss); ``nodule_lesion_weight`` that weight for a small lesion (r ≤ ``snap_max_radius_mm``): under
    ``extreme`` motion a nodule's back-tracking checks came back 5–10 mm off from results within 2 mm of it, and
    its template told them apart better. LIDC nodules, every start's result (before the snap) within max(r,
    2.5 mm), where a score chose: ``extreme`` seeds 10–39 +3 / −1 of 50, 40–59 +6 / 0 of 34, 0–9 +1 of 20;
    ``large-motion`` 0–19 +2 of 14 (4 → 10; 15 gave the same sum; docs/benchmarks.md §31).
    ``field_snap_start``: see :mod:`.multistart`; the record reuses the field start's refined similarity (its
    ``"snapped"`` key is True). Tuning seeds 0–3: 182 → 183 of 199 hits, none lost (docs/benchmarks.md §15).
    ``snap_min_ncc``: the last snap is kept only where the template's best match reaches this weighted NCC; below
    it (a nodule deformed or cut by the scan's edge) the registration's point stays. Tuning seeds 0–3: a nodule
    snapped 0.28 → 2.04 mm off by a peak of 0.45 now stays; any value in 0.45–0.6 gave the same (§16).
    ``snap_min_move_mm``, ``snap_min_gain``: nor where the best match lies nearer than ``snap_min_move_mm`` to the
    registration's point and its NCC exceeds the NCC there by less than ``snap_min_gain``: since the field's own
    shape is the first start (§19) the registration puts nodules within ≈ 0.5 mm, and the template (the baseline
    nodule, grown or shrunk in the follow-up) then moved 22 of 45 tuning nodules away and 7 closer; a move of
    2.8–2.9 mm rescues a nodule the registration missed, a clearly better match (two held-out nodules: NCC
    0.43 → 0.87, 0.60 → 0.81) one it placed beside the nodule. LIDC nodules of tuning seeds 0–9: 177 → 183 of
    190 hits (0 and 0: the snap always, as before; docs/benchmarks.md §20).
    ``field_frame_snap``: with a pair field, the small lesion's template is also put in the field's local frame
    (:meth:`~.deformable.PairField.local_linear` at the lesion, instead of the affine's linear part: at the
    ``extreme`` tuning nodules the true map's derivative differs from the affine's by 0.74 (median Frobenius norm;
    0.57 from the field's)); the frame whose template matches better at the result is the one snapped in, and
    ``(min move mm, min gain)`` replace ``snap_min_move_mm`` and ``snap_min_gain`` (None: the affine's frame
    alone). The confidence keeps the affine frame's NCC. Offline on the shipped results of 323 tuning nodules
    (``extreme`` 0–59, ``large-motion`` 0–19, the other chest scenarios 0–9): 276 → 292 hits, none lost
    (``extreme`` 137 → 153 of 180); the field's frame alone gained 14 and lost 5 (``standard``, ``thick-slice``:
    a field frame that matched worse), the affine's with these gates 10 and 6. Full runs, same seeds: ``extreme``
    197 → 205 of 240 (+10 / −2), ``large-motion`` 78 → 77 of 80, the others unchanged (docs/benchmarks.md §32).
    ``wide_snap_mm``: see :mod:`.multistart` (0: off). Tuning seeds 0–3: 184 → 185 of 199, an ``extreme`` nodule
    10.99 → 0.33 mm, none lost (docs/benchmarks.md §17).
    ``featureless_iterations``, ``featureless_std_hu``: the first refine level's demons iterations for a lesion whose
    baseline surroundings are featureless, and the texture under which they are (:mod:`.featureless`; 0: off).
    Tuning seeds: ``abdomen`` organ-interior points 42 → 47 of 48 (docs/benchmarks.md §18).
    ``visible_snap``: a doubtful result of a visible lesion larger than a nodule moves onto the lesion's
    look-alike (:mod:`.visible_lesion`; None: off). Tuning rows with a confidence below 0.7: 12 misses rescued, 4
    hits closer, none worse (docs/benchmarks.md §24, §25).
    ``fallback_miss_mm``: where every refined result tracks back further than this from the baseline centre and the
    first start (the pair's own estimate: D(c) with a pair field, T(c) without) fell back (the follow-up around it
    did not match the baseline's: mostly at the edge of the follow-up's coverage, where a coarse peak elsewhere
    matched instead), that start is kept as it is: the results are known wrong (:mod:`.multistart`; inf: off).
    ``fov-edge`` tuning seeds 0–8: 26 targets changed, all outside the follow-up, 25 closer by 8–94 mm (median
    error 37 → 6.5 mm), one 0.2 mm further; a report lesion inside it 61.6 → 6.1 mm. Not any start that fell
    back: a report lesion whose two field results agreed 1.1 mm off, tracking back 22 mm off, went to the affine
    start 31.7 mm off (docs/benchmarks.md §26).
    ``lesion_centre``: a visible lesion larger than a nodule whose final point lies on a blob of its contrast moves
    to that blob's centre (:mod:`.lesion_centre`; None: off). ``large-motion`` tuning seeds 0–7 and ``extreme``
    0–6 (LIDC and painted cases, the points of ``auto`` without it as input, 182 lesions of r > 3 mm): 112 moved,
    95 closer, 9 further (by at most 0.65 mm), the sum of errors 452 → 258 mm, 3 misses rescued, none lost; 93
    ``abdomen`` targets (organ interiors, blobs, the HCC) not moved (docs/benchmarks.md §27). Since §28 not where
    the blob keeps under half the lesion's contrast, and only in the slice plane along slices thicker than 3 mm;
    since §29 thicker than 4 mm, and a shrunk lesion's blob beside the point is looked for with smaller openings."""

    coarse: CoarseConfig | None = CoarseConfig()
    min_jump_mm: float = 8.0
    max_starts: int = 2
    accept_miss_mm: float = 2.0
    accept_min_ncc: float = 0.2
    edge_margin_mm: float = 5.0
    candidates_first: bool = False
    registration_starts: tuple[str, ...] = ("field_shape", "affine", "field")
    field_backtrack: bool = True
    snap_mm: float = 2.5
    snap_max_radius_mm: float = 3.0
    lesion_weight: float = 4.0
    nodule_lesion_weight: float = 10.0
    field_snap_start: bool = True
    snap_min_ncc: float = 0.5
    snap_min_move_mm: float = 2.0
    snap_min_gain: float = 0.2
    field_frame_snap: tuple[float, float] | None = (1.0, 0.1)
    wide_snap_mm: float = 10.0
    featureless_iterations: int = 320
    featureless_std_hu: float = 30.0
    visible_snap: VisibleSnapConfig | None = VisibleSnapConfig()
    fallback_miss_mm: float = 20.0
    lesion_centre: LesionCentreConfig | None = LesionCentreConfig()
    refine: RefineConfig = RefineConfig()

    def __post_init__(self) -> None:
        kinds = self.registration_starts
        if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(START_KINDS):
            raise ValueError(f"registration_starts must name some of {', '.join(START_KINDS)}, each once, "
                             f"got {kinds!r}")
