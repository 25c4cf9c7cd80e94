"""Configuration of the TLT network, its inputs and its training, as frozen dataclasses.

Three objects travel together (inside every checkpoint, and in the JSON training recipes under ``configs/``):

- :class:`ModelConfig`: the network (feature extractor, Sparse Selection Strategy, Cross Attention-based
  Transformer, RAAM, centre predictor);
- :class:`PreprocessConfig`: how crops, intensities and Gaussian priors are made (shared by training and
  inference, so a checkpoint always says how its inputs were made);
- :class:`TrainConfig`: data sources, optimisation, validation and logging.

``to_dict()`` gives plain JSON types; ``from_dict()`` rejects unknown keys and wrong types, so a typo in a
recipe is an error, not a silently ignored setting. Sizes are ``(z, y, x)`` in millimetres.
Level 0 of the package: stdlib only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError

NORMS = ("none", "group", "instance")
HEAD_MODES = ("official", "token_offset")
RAAM_MODES = ("logit_bias", "paper_literal", "off")
L1_SPACES = ("normalized", "isotropic", "mm")
PRECISIONS = ("auto", "bf16", "fp32")
PRIOR_SOURCES = ("json_affine", "affine")
SYNTHETIC_STARTS = ("affine", "exact")
BEST_METRICS = {"med_mm": "min", "cpm_10mm": "max", "cpm_radius": "max", "loss": "min"}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


@dataclass(frozen=True)
class ModelConfig:
    """The TLT network (defaults: the official training configuration, method-notes §1, with GroupNorm).

    Attributes:
        backbone_channels: channels of the stem and of each stride-2 residual stage; the feature stride is
            ``2 ** (len - 1)`` (8 for 4 entries).
        norm: normalisation in the feature extractor: "none" (faithful: the official FrozenBatchNorm is the
            identity), "group" (GroupNorm, recommended when training from scratch at small batch sizes) or
            "instance".
        norm_groups: groups of GroupNorm.
        d_model: token width of the transformer; divisible by 3 (one third per axis of the sine encoding, an
            even number) and by ``n_heads``.
        n_heads, ffn_dim, dropout: attention heads, feed-forward width, dropout of the fusion layers.
        fusion_layers: template/search fusion layers (the paper's N = 3) before the final search-path
            cross-attention.
        sss_threshold: Sparse Selection Strategy: template tokens whose lesion prior is ≥ this are kept
            (≤ 0 keeps every token: SSS off).
        sss_min_tokens: at least this many template tokens are kept (highest prior first), so a small lesion
            never yields an empty template.
        raam_mode: how the registration prior biases attention: "logit_bias" (official code: prior added to
            the attention logits of every key), "paper_literal" (the paper's softmax(QKᵀ/√d) + M_A in the
            cross-attentions) or "off".
        pe_temperature: temperature of the sine positional encoding.
        head_mode: centre predictor parameterisation (:mod:`TLTTrackerLib.model.heads`): "official"
            (absolute per-token centres, sigmoid global regression) or "token_offset" (per-token offsets from
            the token's own centre, residual global regression: learns far faster from scratch).
        match_prior: add a learned multiple of the template/search feature cosine similarity to the token
            logits (a Siamese correlation term; :mod:`TLTTrackerLib.model.tracker`).
    """

    backbone_channels: tuple[int, ...] = (32, 64, 128, 192)
    norm: str = "group"
    norm_groups: int = 8
    d_model: int = 192
    n_heads: int = 8
    ffn_dim: int = 192
    dropout: float = 0.1
    fusion_layers: int = 3
    sss_threshold: float = 0.7
    sss_min_tokens: int = 8
    raam_mode: str = "logit_bias"
    pe_temperature: float = 10000.0
    head_mode: str = "official"
    match_prior: bool = False

    def __post_init__(self) -> None:
        _check(self.head_mode in HEAD_MODES, f"model.head_mode {self.head_mode!r} is not one of {HEAD_MODES}")
        _check(len(self.backbone_channels) >= 2, "model.backbone_channels needs at least 2 entries")
        _check(self.norm in NORMS, f"model.norm {self.norm!r} is not one of {NORMS}")
        if self.norm == "group":
            bad = [c for c in self.backbone_channels if c % self.norm_groups]
            _check(
                not bad, f"model.backbone_channels {bad} are not divisible by norm_groups {self.norm_groups}"
            )
        _check(
            self.d_model % 6 == 0, f"model.d_model {self.d_model} must be divisible by 6 (3 axes × sin/cos)"
        )
        _check(self.d_model % self.n_heads == 0, f"model.d_model {self.d_model} not divisible by n_heads")
        _check(self.raam_mode in RAAM_MODES, f"model.raam_mode {self.raam_mode!r} is not one of {RAAM_MODES}")
        _check(self.sss_min_tokens >= 1, "model.sss_min_tokens must be ≥ 1")
        _check(0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)")
        _check(self.fusion_layers >= 1, "model.fusion_layers must be ≥ 1")

    @property
    def stride(self) -> int:
        """Voxels per feature-grid step: token i sits at crop voxel ``stride * i``."""
        return 2 ** (len(self.backbone_channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d, "model")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a (baseline lesion, follow-up) pair becomes network inputs.

    Attributes:
        spacing_mm: isotropic sampling step of both crops (the paper resamples to 1 mm).
        search_size_mm: follow-up (search) crop ``(z, y, x)`` in mm, centred on the registration-propagated
            point. Default from ``benchmarks/search_window.py``: the smallest window whose interior (8 mm
            margin) holds the true centre for ≥ 99 % of the pairs of each DLS split with DLT's affine start
            (96×80×80 mm: valid 99.45 %, test 99.17 %; the official 40×200×200 holds 96.7 % / 94.4 % with no
            margin) at 38 % of the official window's voxels and 1200 instead of 3125 search tokens.
        template_size_mm: baseline (template) crop ``(z, y, x)`` in mm, centred on the lesion. Only tokens
            near the lesion survive SSS (within 0.85 σ of the centre: ±7 mm for σ = 8, ±17 mm for a 20 mm
            radius), so 64 mm holds them and most of their receptive field (±23 voxels) at 43 % of the search
            window's voxels (CPU time); the official code used one window for both crops (set it equal to the
            search window for that).
        token_stride: feature stride of the model (must equal ``ModelConfig.stride``).
        hu_window: HU mapped to [0, 1]: ``(hu - lo) / (hi - lo)`` (official: [-800, 800], unclipped).
        hu_clip: clip the windowed values to [0, 1] (off in the official code).
        pad_hu: value outside a scan (air).
        sigma_min_mm, sigma_radius_scale: Gaussian prior width ``σ = max(scale × radius, sigma_min_mm)``; the
            8 mm floor keeps ≥ 1 template token above 0.7 on the stride-8 grid except at the worst lattice
            offsets (which need 8.2 mm; method-notes §1.4), where the minimum-token fallback takes over.
        interpolation_order: spline order of crop sampling (1 = trilinear).
        antialias: Gaussian-smooth volume axes finer than ``spacing_mm`` before sampling a crop (σ = ½ √(f² − 1)
            voxels for a decimation factor f), so a 0.7 mm scan and a 2 mm scan give alike 2 mm crops.
    """

    spacing_mm: float = 1.0
    search_size_mm: tuple[float, float, float] = (96.0, 80.0, 80.0)
    template_size_mm: tuple[float, float, float] = (64.0, 64.0, 64.0)
    token_stride: int = 8
    hu_window: tuple[float, float] = (-800.0, 800.0)
    hu_clip: bool = False
    pad_hu: float = -1024.0
    sigma_min_mm: float = 8.0
    sigma_radius_scale: float = 1.0
    interpolation_order: int = 1
    antialias: bool = False

    def __post_init__(self) -> None:
        _check(self.spacing_mm > 0, "preprocess.spacing_mm must be > 0")
        _check(
            self.hu_window[1] > self.hu_window[0], "preprocess.hu_window must be [low, high] with low < high"
        )
        _check(self.interpolation_order in (0, 1, 3), "preprocess.interpolation_order must be 0, 1 or 3")
        for name in ("search_size_mm", "template_size_mm"):
            shape = self.crop_shape(getattr(self, name))
            _check(
                all(s % self.token_stride == 0 and s > 0 for s in shape),
                f"preprocess.{name} {getattr(self, name)} at {self.spacing_mm} mm gives {shape} voxels; each "
                f"must be a positive multiple of token_stride {self.token_stride}",
            )

    def crop_shape(self, size_mm: tuple[float, float, float]) -> tuple[int, int, int]:
        """Voxels ``(D, H, W)`` of a crop of ``size_mm`` (z, y, x) at ``spacing_mm``."""
        return tuple(int(round(s / self.spacing_mm)) for s in size_mm)  # type: ignore[return-value]

    @property
    def search_shape(self) -> tuple[int, int, int]:
        return self.crop_shape(self.search_size_mm)

    @property
    def template_shape(self) -> tuple[int, int, int]:
        return self.crop_shape(self.template_size_mm)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        return _from_dict(cls, d, "preprocess")


@dataclass(frozen=True)
class TrainConfig:
    """Data, optimisation and bookkeeping of ``tlt-tracker train`` (see ``training/fit.py``).

    Data (at least one source): DLS supervised pairs (``dls_train_json`` + ``dls_volume_dir`` holding the
    volumes ``prepare-deeplesion`` wrote), self-supervised synthetic pairs made from any CT volumes
    (``synthetic_volumes``: files or folders), or both mixed with ``synthetic_mix_ratio``. Paths are taken
    relative to the working directory. Validation uses ``dls_valid_json`` if given, else
    ``synthetic_valid_volumes`` (fixed seeds), else none.

    Units: ``batch_size`` is dataset items per process and step (a DLS pair = 1 sample, a synthetic pair =
    ``synthetic_lesions_per_pair`` samples); steps count optimiser updates; ``synthetic_start`` "affine"
    starts the search at the affine part of the synthetic map (the network learns the non-rigid rest),
    "exact" at the truth, both plus N(0, ``synthetic_start_jitter_mm``²) per axis; ``precision`` "auto" is
    bf16 autocast on CUDA and float32 on CPU; ``best_metric`` picks ``best.pt`` (``med_mm`` lower is better).
    """

    output_dir: str = "runs/tlt"
    seed: int = 0
    device: str = "auto"
    # ---- data
    dls_train_json: str | None = None
    dls_valid_json: str | None = None
    dls_volume_dir: str | None = None
    dls_prior_source: str = "json_affine"
    synthetic_volumes: tuple[str, ...] = ()
    synthetic_valid_volumes: tuple[str, ...] = ()
    synthetic_items_per_epoch: int = 1000
    synthetic_valid_items: int = 64
    synthetic_lesions_per_pair: int = 4
    synthetic_point_kind: str = "mixed"
    synthetic_radius_mm: tuple[float, float] = (3.0, 15.0)
    synthetic_start: str = "affine"
    synthetic_start_jitter_mm: float = 2.0
    synthetic_mix_ratio: float = 0.5
    # fast crop-only synthetic items (data/crop_pairs.py): each item renders only its search crops
    synthetic_crop_only: bool = False
    synthetic_volume_groups: tuple[tuple[str, ...], ...] = ()  # scans of one frame (contrast phases)
    synthetic_valid_groups: tuple[tuple[str, ...], ...] = ()
    synthetic_phantoms: int = 0  # extra generated phantom volumes in the training set
    synthetic_nonrigid_rms_mm: tuple[float, float] | None = None  # log-uniform per pair (None: generator's)
    synthetic_node_spacing_mm: float = 8.0
    synthetic_growth_range: tuple[float, float] | None = None
    synthetic_slice_thickness_mm: tuple[float, ...] = ()  # follow-up thickness choices (empty: generator's)
    augment: bool = True
    aug_crop_jitter_mm: float = 8.0
    aug_intensity_scale: float = 0.1
    aug_intensity_shift: float = 0.05
    aug_flip: bool = True
    # ---- optimisation
    batch_size: int = 4
    num_workers: int = 4
    cpu_threads: int = 0  # torch threads on a CPU device; 0: cores minus data workers (at least 1)
    max_steps: int = 100_000
    warmup_steps: int = 1000
    lr: float = 1e-4
    min_lr_ratio: float = 0.01
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip_norm: float = 1.0
    precision: str = "auto"
    focal_weight: float = 1.0
    l1_weight: float = 1.0
    l1_space: str = "normalized"
    # ---- bookkeeping
    val_every_steps: int = 1000
    val_max_items: int = 0
    checkpoint_every_steps: int = 1000
    log_every_steps: int = 20
    best_metric: str = "med_mm"

    def __post_init__(self) -> None:
        _check(
            bool(self.dls_train_json) or bool(self.synthetic_volumes) or bool(self.synthetic_volume_groups),
            "train: give dls_train_json (+ dls_volume_dir) and/or synthetic_volumes as training data",
        )
        _check(
            not self.dls_train_json or bool(self.dls_volume_dir),
            "train.dls_volume_dir is needed with DLS data",
        )
        _check(
            self.dls_prior_source in PRIOR_SOURCES, f"train.dls_prior_source must be one of {PRIOR_SOURCES}"
        )
        _check(
            self.synthetic_start in SYNTHETIC_STARTS,
            f"train.synthetic_start must be one of {SYNTHETIC_STARTS}",
        )
        _check(self.l1_space in L1_SPACES, f"train.l1_space {self.l1_space!r} is not one of {L1_SPACES}")
        _check(self.precision in PRECISIONS, f"train.precision {self.precision!r} is not one of {PRECISIONS}")
        _check(self.best_metric in BEST_METRICS, f"train.best_metric must be one of {sorted(BEST_METRICS)}")
        _check(0.0 <= self.synthetic_mix_ratio <= 1.0, "train.synthetic_mix_ratio must be in [0, 1]")
        _check(self.batch_size >= 1 and self.max_steps >= 1, "train.batch_size and max_steps must be ≥ 1")
        _check(self.synthetic_lesions_per_pair >= 1, "train.synthetic_lesions_per_pair must be ≥ 1")
        _check(
            not (self.synthetic_volume_groups or self.synthetic_phantoms) or self.synthetic_crop_only,
            "train.synthetic_volume_groups and synthetic_phantoms need synthetic_crop_only: true",
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d, "train")


# ------------------------------------------------------------------------------------------ (de)serialising
C = TypeVar("C")


def _to_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a JSON value against a field annotation (str, int, float, bool, tuples, optionals)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        _check(len(value) == len(args), f"{where} must have {len(args)} entries, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if annotation is bool:
        _check(isinstance(value, bool), f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            f"{where} must be an integer, got {value!r}",
        )
        return value
    if annotation is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), f"{where} must be a number")
        return float(value)
    if annotation is str:
        _check(isinstance(value, str), f"{where} must be a string, got {value!r}")
        return value
    return value


def _from_dict(cls: type[C], d: dict[str, Any], section: str) -> C:
    if not isinstance(d, dict):
        raise InputError(f"config section {section!r} must be a JSON object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    _check(not unknown, f"unknown {section} config keys {unknown}; known keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in d.items()}
    return cls(**kwargs)


SECTIONS = {"model": ModelConfig, "preprocess": PreprocessConfig, "train": TrainConfig}


@dataclass(frozen=True)
class RunConfig:
    """The three sections of a training recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model.to_dict(), "preprocess": self.preprocess.to_dict()}
        if self.train is not None:
            out["train"] = self.train.to_dict()
        return out


def check_compatible(model: ModelConfig, preprocess: PreprocessConfig) -> None:
    """The preprocessing token grid must match the model's feature stride."""
    _check(
        preprocess.token_stride == model.stride,
        f"preprocess.token_stride {preprocess.token_stride} differs from the model's stride {model.stride}",
    )


def run_config_from_dict(d: dict[str, Any], overrides: dict[str, Any] | None = None) -> RunConfig:
    """``{"model": {...}, "preprocess": {...}, "train": {...}}`` (sections optional except train for training)
    plus dotted overrides ``{"train.max_steps": 10}`` -> :class:`RunConfig`."""
    if not isinstance(d, dict):
        raise InputError("a training recipe must be a JSON object with model/preprocess/train sections")
    unknown = sorted(set(d) - set(SECTIONS) - {"comment"})
    _check(not unknown, f"unknown config sections {unknown}; use model, preprocess, train")
    merged = {k: dict(d.get(k) or {}) for k in SECTIONS}
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        _check(section in SECTIONS and bool(name), f"override {key!r} must look like train.max_steps=10")
        merged[section][name] = value
    model = ModelConfig.from_dict(merged["model"])
    preprocess = PreprocessConfig.from_dict(merged["preprocess"])
    check_compatible(model, preprocess)
    train = TrainConfig.from_dict(merged["train"]) if merged["train"] else None
    return RunConfig(model, preprocess, train)


def load_run_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a JSON training recipe (see ``configs/``); unknown keys are errors."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON ({exc})") from exc
    return run_config_from_dict(data, overrides)
