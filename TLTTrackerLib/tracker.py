"""LesionTracker: the end-to-end tracking session (SAM-predictor style: set the pair once, track many).

    tracker = LesionTracker(method="auto")
    tracker.set_pair(baseline, followup)          # registration + per-pair preprocessing, cached
    results = tracker.track([Lesion("L1", center_lps_mm, radius_mm=6.0)])
    results[0].followup_center_lps_mm             # (3,) LPS mm in the follow-up scan

Every centre is LPS mm. ``progress(fraction, message)`` callbacks report work; ``cancel()`` returning True
stops between steps with :class:`Cancelled`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np

from .errors import Cancelled, InputError  # noqa: F401 (Cancelled: re-exported)
from .geometry import Volume
from .lesions import Lesion
from .model_loader import ModelLoader
from .confidence import BACKTRACK_MIN_MM  # noqa: F401 (re-exported)
from .core_share import Threads, available_cores, track_side_by_side
from .deformable import PairField
from .multistart import track_point
from .multistart_config import BACKTRACK_CONFIG, MultiStartConfig  # noqa: F401 (BACKTRACK_CONFIG: re-exported)
from .network_tracking import TLT_SNAP_COARSE_MM, TLT_SNAP_MM, track_with_network, with_network_view  # noqa: F401
from .refine import RefineConfig
from .tracked_lesion import TrackedLesion
from .validation import as_lesions, as_volume, check_inside, check_registration_pair, pair_fingerprint
from .registration import RegistrationResult, register_affine

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

METHODS = ("affine", "refine", "tlt", "tlt+refine")
# need a model file (--model, or the bundled one); "tlt+refine": the network's point joins refine's starts
LEARNED_METHODS: tuple[str, ...] = ("tlt", "tlt+refine")
AUTO_METHOD = "refine"  # best measured method without a model (docs/benchmarks.md)


class LesionTracker:
    """Tracks lesions between one baseline and one follow-up scan.

    Args:
        method: "affine" (registration only) or "auto" (the best measured method available).
        model: a model path or registry name for learned methods (``None``: bundled model if any).
        device: "auto", "cpu" or "cuda" for learned methods.
        workers: lesions refined side by side (threads; each filter takes its share of the cores, so the last
            lesions running get all of them, :mod:`.core_share`): 0 = one per CPU core
            available to this process, 1 = one lesion at a time on all cores. Same results either way; on 2
            cores 11 lesions take 9.2 s side by side vs 12.3 s one at a time (docs/benchmarks.md).
        deformable: for every method but ``affine``, register the whole pair deformably once
            (:mod:`.deformable`, ≈ 1.4 s on 2 cores): each lesion is refined first from where that field puts
            it (then, if that does not back-track within 2 mm, from the affine start), and every back-tracking
            check starts at the field's inverse (:mod:`.multistart`); ``tlt`` and ``tlt+refine``'s network
            starts where the field puts the lesion (its registration prior). False: the affine estimate and the
            coarse search only.
    """

    def __init__(self, method: str = "auto", model: str | None = None, device: str = "auto",
                 workers: int = 0, deformable: bool = True) -> None:
        if method not in (*METHODS, "auto"):
            raise InputError(f"unknown method {method!r}; choose one of {', '.join((*METHODS, 'auto'))}")
        if not isinstance(workers, int) or workers < 0:
            raise InputError(f"workers must be an integer >= 0 (0: one per core), got {workers!r}")
        self.method = method
        self.device = device
        self.workers = workers
        self.baseline: Volume | None = None
        self.followup: Volume | None = None
        self.registration: RegistrationResult | None = None
        self.deformable = deformable
        self.field: PairField | None = None
        self.timing_s: dict[str, float] = {}
        self._models = ModelLoader(model)  # the TLT network, loaded once (learned methods)

    @property
    def model(self) -> str | None:
        """The model of the learned methods: a path, a registry name, or None (the bundled model)."""
        return self._models.spec

    @model.setter
    def model(self, spec: str | None) -> None:
        self._models = ModelLoader(spec)

    def resolved_method(self) -> str:
        """The method ``track`` will use ("auto" resolved)."""
        return AUTO_METHOD if self.method == "auto" else self.method

    def set_pair(
        self,
        baseline: Volume,
        followup: Volume,
        registration: RegistrationResult | None = None,
        progress: ProgressFn | None = None,
    ) -> RegistrationResult:
        """Register the pair (or reuse ``registration``, which must be of this pair) and cache it for
        :meth:`track`. InputError for anything but two finite Volumes or a registration of another pair."""
        baseline, followup = as_volume(baseline, "baseline"), as_volume(followup, "follow-up")
        t0 = time.perf_counter()
        if registration is None:
            if progress:
                progress(0.0, "registering baseline to follow-up")
            registration = register_affine(baseline, followup)
            registration.info["pair"] = pair_fingerprint(baseline, followup)
        elif not isinstance(registration, RegistrationResult):
            raise InputError(f"registration must be a RegistrationResult, got {type(registration).__name__}")
        else:
            check_registration_pair(registration.info, baseline, followup, registration.info.get("loaded_from", ""))
        self.baseline, self.followup = baseline, followup
        self.registration = registration
        self.timing_s["registration"] = time.perf_counter() - t0
        self.field = None  # made by the first track() that needs it (_make_field)
        logger.info("registration: metric %.4f in %.2f s", registration.metric_value, registration.seconds)
        return registration

    def track(
        self,
        lesions: Sequence[Lesion],
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        with_heatmap: bool = False,
        backtrack: bool = True,
        candidates_lps_mm: dict[str, Any] | None = None,
    ) -> list[TrackedLesion]:
        """Track ``lesions`` (baseline LPS) into the follow-up. Call :meth:`set_pair` first.

        Args:
            with_heatmap: attach each lesion's matching score map (a small LPS-aligned Volume, values in
                [-1, 1], in the follow-up's physical frame) as ``TrackedLesion.heatmap``.
            backtrack: refine from several starts (the affine estimate, the pair's deformable field's point,
                that point again from the field's own shape, ``candidates_lps_mm``, the coarse-search peaks),
                track each result back to the baseline and keep the one that comes back nearest the input centre
                and looks most like the lesion (:mod:`.multistart`); the confidence combines
                that miss, the similarity, the lesion's own template and the distance to the follow-up's edge
                (:mod:`.confidence`); when the miss
                exceeds max(radius, ``BACKTRACK_MIN_MM``) add the flag ``"backtrack_mismatch"``. Off: one
                refinement from the affine estimate, similarity-only confidence (a small lesion still snaps onto
                its own template, :mod:`.lesion_template`).
            candidates_lps_mm: per lesion id, ``(K, 3)`` extra follow-up start points (LPS mm), e.g. a learned
                prediction, or a function that returns them when the registration's starts have failed
                (:func:`~.multistart.track_point`); refined after those starts, kept when they back-track best.
        """
        if self.registration is None or self.baseline is None or self.followup is None:
            raise InputError("no scan pair set: call set_pair(baseline, followup) before track()")
        lesions = as_lesions(lesions)  # a generator would otherwise be used up by check_inside
        check_inside(self.baseline, lesions)
        method = self.resolved_method()
        self.prepare(progress)  # the pair field, once per pair, before the lesions run side by side
        if method in LEARNED_METHODS:
            self.wait_for_model()
        t0 = time.perf_counter()
        if method == "tlt":  # one batched network pass for all lesions
            results = self._track_learned(lesions, with_heatmap, progress, TLT_SNAP_MM)
        elif method == "tlt+refine":
            results = self._track_learned_refined(lesions, with_heatmap, backtrack, progress, cancel)
        else:
            def one(k: int, les: Lesion, config: MultiStartConfig) -> TrackedLesion:
                return self._track_one(les, method, with_heatmap, backtrack, candidates_lps_mm, config=config)

            results = self._each_lesion(lesions, one, progress, cancel)
        self.timing_s["tracking"] = time.perf_counter() - t0
        return results

    def _each_lesion(self, lesions: Sequence[Lesion], fn: Callable[[int, Lesion, MultiStartConfig], Any],
                     progress: ProgressFn | None, cancel: CancelFn | None) -> list:
        """``[fn(k, lesion, config) for k, lesion in enumerate(lesions)]``, ``workers`` lesions at a time, each
        with its share of the cores in ``config`` (:func:`~.core_share.track_side_by_side`)."""
        def with_config(k: int, les: Lesion, threads: Threads) -> Any:
            return fn(k, les, MultiStartConfig(refine=RefineConfig(threads=threads)))

        return track_side_by_side(lesions, with_config, self.workers or available_cores(), progress, cancel)

    def prepare(self, progress: ProgressFn | None = None) -> None:
        """Make the pair's deformable field now if the method uses one and the pair has none yet (else the next
        :meth:`track` makes it): a caller that waits for the model next lets its background load overlap this."""
        if self.resolved_method() != "affine" and self.deformable and self.field is None:
            self._make_field(progress)

    def _make_field(self, progress: ProgressFn | None) -> None:
        """The pair's deformable field (:func:`~.deformable.register_field`) into ``self.field``."""
        assert self.registration is not None and self.baseline is not None and self.followup is not None
        from .deformable import register_field

        if progress:
            progress(0.0, "deformable registration of the pair")
        self.field = register_field(self.baseline, self.followup, self.registration.baseline_to_followup,
                                    images=self.registration.working_images)
        self.timing_s["deformable"] = self.field.seconds
        logger.info("deformable registration of the pair: %.2f s", self.field.seconds)

    def check_model(self) -> None:
        """For a method that needs a model: find its file now (ModelFileError before any registration work when
        it is missing, unknown, fails its checksum or there is no PyTorch) and load it in the background, so
        that torch's import and the load (1.5–2.5 s on 2 cores; ≈ 4.5 s on docs/benchmarks.md §22's H200 machine)
        overlap the registration and the pair field (:meth:`prepare`); a file that does not load raises
        ModelFileError from :meth:`wait_for_model` or the next :meth:`track`."""
        if self.resolved_method() in LEARNED_METHODS:
            self._models.start(self.device)

    def wait_for_model(self) -> None:
        """Wait for the load that :meth:`check_model` started (ModelFileError if it failed); no-op otherwise. For
        a learned method the time waited adds to ``timing_s["model_wait"]``."""
        if self.resolved_method() not in LEARNED_METHODS:
            return
        t0 = time.perf_counter()
        try:
            self._models.wait()
        finally:
            self.timing_s["model_wait"] = self.timing_s.get("model_wait", 0.0) + time.perf_counter() - t0

    def _track_learned(self, lesions: Sequence[Lesion], with_heatmap: bool, progress: ProgressFn | None,
                       snap_mm: float) -> list[TrackedLesion]:
        """The network on ``lesions``, started where the pair's deformable field (else the affine) puts them
        (:func:`~.network_tracking.track_with_network`)."""
        assert self.registration is not None and self.baseline is not None and self.followup is not None
        forward = self.registration.baseline_to_followup
        # the network's registration prior (RAA): the pair's deformable field where made, else the affine
        prior = self.field if self.field is not None else forward
        return track_with_network(self._models.predictor, self.device, self.baseline, self.followup, forward, prior,
                                  lesions, with_heatmap, progress, snap_mm)

    def _track_learned_refined(self, lesions: Sequence[Lesion], with_heatmap: bool, backtrack: bool,
                               progress: ProgressFn | None, cancel: CancelFn | None) -> list[TrackedLesion]:
        """The network's global view as one more start of the multi-start refinement, after the registration's
        own starts (field shape, affine, pair field) and before the coarse search: a lesion whose registration
        start tracks back within ``accept_miss_mm`` gets ``refine``'s result unchanged, and the network runs only
        for the others (one lesion at a time, when its registration starts have failed); the network's own point
        (not snapped as ``tlt``'s: as a start, the snapped point lost MED on extreme and fov-edge and 0.01 AUC,
        docs/benchmarks.md §14) is refined and the start whose result scores best wins (:mod:`.multistart`).
        Tuning seeds 0–3: the same hits as ``refine`` on every scenario, lower MED on extreme and fov-edge
        (docs/benchmarks.md §13). The confidence is refine's (back-tracking, similarity, edge), halved when the
        network ran and the kept result lies more than max(radius, 10 mm) from its point (the two views
        disagree; :func:`~.network_tracking.with_network_view`)."""
        def one(k: int, les: Lesion, config: MultiStartConfig) -> TrackedLesion:
            network: list[TrackedLesion] = []

            def network_start() -> np.ndarray:
                network.append(self._track_learned([les], False, None, snap_mm=0.0)[0])
                return network[0].followup_center_lps_mm[None]

            r = self._track_one(les, "refine", with_heatmap, backtrack, {les.id: network_start}, config=config)
            return with_network_view(r, network[0] if network else None)

        return self._each_lesion(lesions, one, progress, cancel)

    def _track_one(self, les: Lesion, method: str, with_heatmap: bool, backtrack: bool,
                   candidates_lps_mm: dict[str, Any] | None = None,
                   config: MultiStartConfig = MultiStartConfig()) -> TrackedLesion:
        assert self.registration is not None and self.baseline is not None and self.followup is not None
        forward = self.registration.baseline_to_followup
        affine_c = forward.apply(les.center_lps_mm)
        flags: list[str] = []
        heatmap = None
        extra: dict[str, Any] = {}
        if method == "affine":  # registration only: no confidence measure (NaN -> null / "n/a")
            center, confidence = affine_c, float("nan")
            flags.append("no_confidence_measure")
        else:
            starts = None if candidates_lps_mm is None else candidates_lps_mm.get(les.id)
            res = track_point(self.baseline, self.followup, les.center_lps_mm, les.radius_mm, forward,
                              candidates_lps_mm=starts, keep_maps=with_heatmap, backtrack=backtrack,
                              config=config, pair_field=self.field)
            center, confidence = res.center_lps_mm, res.confidence
            flags.extend(res.flags)
            extra["level_similarity"] = [round(v, 4) for v in res.level_similarity]
            if "backtrack_error_mm" in res.info:
                extra["backtrack_error_mm"] = round(res.info["backtrack_error_mm"], 3)
            if "lesion_ncc" in res.info:
                extra["lesion_ncc"] = round(res.info["lesion_ncc"], 4)
            for key in ("snap_mm", "visible_snap_mm", "centre_move_mm", "field_gap_mm", "field_shift_mm",
                        "agreement_mm", "first_miss_mm", "edge_mm"):
                if key in res.info:
                    extra[key] = round(res.info[key], 3)
            if res.info.get("coarse") is not None:
                extra["coarse_gap"] = round(res.info["coarse"].gap, 4)
            extra["starts"] = len(res.info["records"])
            extra["chosen_start"] = res.info["chosen_start"]
            extra["chosen_kind"] = res.info["chosen_kind"]
            if with_heatmap and res.info.get("maps"):
                score, origin, spacing = res.info["maps"][0]
                heatmap = Volume(score, origin, np.full(3, spacing))
        if not self.followup.contains_lps(center):
            if "outside_followup" not in flags:
                flags.append("outside_followup")
            confidence = 0.0
        return TrackedLesion(
            id=les.id,
            baseline_center_lps_mm=les.center_lps_mm,
            followup_center_lps_mm=np.asarray(center, dtype=float),
            radius_mm=les.radius_mm,
            method=method,
            confidence=float(confidence),
            affine_center_lps_mm=affine_c,
            flags=tuple(flags),
            heatmap=heatmap,
            extra=extra,
        )


def track_chain(
    volumes: Sequence[Volume],
    lesions: Sequence[Lesion],
    method: str = "auto",
    progress: ProgressFn | None = None,
) -> list[list[TrackedLesion]]:
    """Track lesions through time points ``volumes[0] -> volumes[1] -> ...`` pair by pair.

    Returns one result list per follow-up (``len(volumes) - 1`` lists); each step starts from the previous
    step's follow-up centres (same ids and radii).
    """
    if len(volumes) < 2:
        raise InputError("track_chain needs at least two volumes (baseline and one follow-up)")
    chain: list[list[TrackedLesion]] = []
    current = list(lesions)
    steps = len(volumes) - 1
    for n in range(steps):
        tracker = LesionTracker(method=method)
        tracker.set_pair(volumes[n], volumes[n + 1])
        results = tracker.track(current)
        chain.append(results)
        current = [Lesion(r.id, r.followup_center_lps_mm, r.radius_mm) for r in results]
        if progress:
            progress((n + 1) / steps, f"time point {n + 1} of {steps}")
    return chain
