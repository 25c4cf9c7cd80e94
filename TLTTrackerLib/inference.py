"""Run a trained TLT network on a scan pair: baseline lesions -> follow-up LPS centres + confidence.

    predictor = TLTPredictor.from_checkpoint("tlt.pt", device="auto")
    results = predictor.predict(baseline, followup, lesions, registration.baseline_to_followup)
    results[0].center_lps_mm, results[0].confidence

Per lesion: the template crop around the baseline centre and the search crop around the
registration-propagated point are sampled straight from the two volumes
(:func:`TLTTrackerLib.preprocessing.build_sample`, with the checkpoint's :class:`PreprocessConfig`); lesions
are batched through the network; the global-regression centre is mapped back to LPS mm. Confidence is the
largest token probability (sigmoid of the classification logits); the optional heatmap is the token
probability map as a small LPS-aligned :class:`Volume` (one voxel per token, ``stride × spacing_mm`` apart) in
the follow-up's physical frame. Imports torch only here (and in ``model/``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ModelConfig, PreprocessConfig
from .errors import DeviceError
from .geometry import Volume
from .lesions import Lesion
from .preprocessing import build_sample, crop_index_to_lps, normalized_to_lps
from .transforms import linear_scale

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


def resolve_device(preference: str = "auto", local_rank: int = 0) -> Any:
    """A ``torch.device``: "auto" -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; "cuda", "cuda:N"
    and "cpu" as given. Raises DeviceError for CUDA without a GPU or an unknown name."""
    import torch

    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {preference!r} requested but CUDA is not available; use --device cpu")
        return torch.device(preference if ":" in preference else f"cuda:{local_rank}")
    if preference != "cpu":
        raise DeviceError(f"unknown device {preference!r}; use auto, cpu or cuda[:N]")
    return torch.device("cpu")


def autocast(device: Any, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA for "auto"/"bf16", on CPU only for "bf16" (fast on CPUs with AVX512-BF16/AMX);
    otherwise float32."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass(frozen=True, eq=False)
class TLTPrediction:
    """The network's answer for one lesion.

    Attributes:
        id: the lesion's id.
        center_lps_mm: ``(3,)`` predicted follow-up centre, LPS mm.
        confidence: largest token probability in [0, 1].
        start_lps_mm: ``(3,)`` the registration-propagated start point.
        heatmap: token probabilities ``(d, h, w)`` as an LPS-aligned Volume, or None.
        info: template tokens kept, shift from the start in mm.
    """

    id: str
    center_lps_mm: np.ndarray
    confidence: float
    start_lps_mm: np.ndarray
    heatmap: Volume | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _prior_scale(transform: Any) -> float:
    matrix = getattr(transform, "matrix", None)
    return linear_scale(matrix) if matrix is not None else 1.0


class TLTPredictor:
    """A loaded network with its preprocessing; :meth:`predict` any number of lesions of a pair.

    Args:
        model: a :class:`TLTTrackerLib.model.TransformerLesionTracker` (put in eval mode here).
        model_config, preprocess_config: from the checkpoint.
        device: "auto" (CUDA when available), "cpu" or "cuda[:N]".
        precision: "auto" (bf16 on CUDA, float32 on CPU), "bf16" or "fp32".
        batch_size: lesions per forward pass.
    """

    def __init__(
        self,
        model: Any,
        model_config: ModelConfig,
        preprocess_config: PreprocessConfig,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 8,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.model_config = model_config
        self.preprocess = preprocess_config
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        self.untrained = False  # from_checkpoint: True for a checkpoint with 0 training steps

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], device: str = "auto", precision: str = "auto", batch_size: int = 8
    ) -> TLTPredictor:
        """Load a checkpoint written by ``tlt-tracker train`` (raises ModelFileError for a bad file)."""
        from .checkpoint import is_trained, load_model

        model, model_config, preprocess_config, data = load_model(path)  # warns when untrained
        predictor = cls(model, model_config, preprocess_config, device, precision, batch_size)
        predictor.untrained = not is_trained(data)
        return predictor

    def predict(
        self,
        baseline: Volume,
        followup: Volume,
        lesions: Sequence[Lesion],
        transform: Any,
        with_heatmap: bool = False,
        progress: ProgressFn | None = None,
    ) -> list[TLTPrediction]:
        """Track ``lesions`` (baseline LPS centres and radii) into ``followup``.

        Args:
            transform: maps baseline LPS points to follow-up LPS points (``apply``), e.g.
                ``RegistrationResult.baseline_to_followup``; its linear part (if any) scales the prior.
            with_heatmap: attach the token probability map of each lesion.
            progress: ``progress(fraction, message)`` after each batch.
        """
        import torch

        from .data.dataset import collate_samples, to_device
        from .model import tokens_to_volume

        scale = _prior_scale(transform)
        samples = []
        for les in lesions:
            start = np.asarray(transform.apply(les.center_lps_mm), dtype=float)
            samples.append(
                build_sample(
                    baseline,
                    followup,
                    les.center_lps_mm,
                    les.radius_mm,
                    start,
                    self.preprocess,
                    prior_scale=scale,
                )
            )
        results: list[TLTPrediction] = []
        for first in range(0, len(samples), self.batch_size):
            chunk = samples[first : first + self.batch_size]
            batch = to_device(collate_samples([[s] for s in chunk]), self.device)
            with torch.inference_mode(), autocast(self.device, self.precision):
                out = self.model(batch)
            centers = out["center"].float().cpu().numpy()
            grid = tuple(chunk[0]["search_prior"].shape)
            probs = torch.sigmoid(out["logits"].float())  # (B, Ns)
            prob_maps = tokens_to_volume(probs[..., None], grid)[:, 0].cpu().numpy()  # (B, ds, hs, ws)
            counts = out["template_token_count"].cpu().numpy()
            for n, s in enumerate(chunk):
                les = lesions[first + n]
                meta = s["meta"]
                center = normalized_to_lps(centers[n], meta)
                start = np.asarray(meta["start_lps_mm"])
                heat = self._heatmap(prob_maps[n], meta) if with_heatmap else None
                results.append(
                    TLTPrediction(
                        id=les.id,
                        center_lps_mm=center,
                        # an untrained network's probabilities mean nothing: no confidence (NaN -> null)
                        confidence=float("nan") if self.untrained else float(prob_maps[n].max()),
                        start_lps_mm=start,
                        heatmap=heat,
                        info={
                            "template_tokens": int(counts[n]),
                            "shift_mm": float(np.linalg.norm(center - start)),
                            **({"flags": ("untrained_model",)} if self.untrained else {}),
                        },
                    )
                )
            if progress:
                progress(
                    len(results) / len(samples), f"TLT network: {len(results)} of {len(samples)} lesions"
                )
        return results

    def _heatmap(self, prob: np.ndarray, meta: dict[str, Any]) -> Volume:
        """Token probabilities ``(d, h, w)`` -> LPS-aligned Volume; token (a, b, c) is crop voxel
        stride·(a, b, c)."""
        stride = self.preprocess.token_stride
        spacing = float(meta["spacing_mm"])
        origin = crop_index_to_lps(
            np.zeros(3), np.asarray(meta["search_center_lps_mm"]), tuple(meta["search_shape"]), spacing
        )
        return Volume(prob.astype(np.float32), origin, np.full(3, stride * spacing), np.eye(3))


def track_lesions(
    checkpoint: str | os.PathLike[str],
    baseline: Volume,
    followup: Volume,
    lesions: Sequence[Lesion],
    transform: Any,
    device: str = "auto",
    with_heatmap: bool = False,
) -> list[TLTPrediction]:
    """One-call helper: load ``checkpoint`` and :meth:`TLTPredictor.predict` (reuse a predictor for many
    pairs instead)."""
    return TLTPredictor.from_checkpoint(checkpoint, device=device).predict(
        baseline, followup, lesions, transform, with_heatmap=with_heatmap
    )
