"""A calibration profile: what `sensorium calibrate` learns from labelled examples, for one label set.

It holds the temperature, the cross-fitted conformal scores of the examples (so any confidence can
be asked later, marginal or per label), and the measures before and after, and is stored as a small
JSON file (no pickles). A classifier's probabilities over the same labels go in; calibrated
probabilities, label sets with a coverage guarantee, or an answer / "uncertain" come out.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import calibration, conformal

FORMAT = 1
KIND = "sensorium-calibration"
DEFAULT_CONFIDENCE = 0.9
UNCERTAIN = "uncertain"


@dataclass
class Decision:
    """What a calibrated classifier answers for one input: a label, or `uncertain` with the candidates."""

    label: str | None  # None when uncertain
    candidates: list[str]  # the conformal set, most probable first (empty: no label is likely enough)
    confidence: float  # the calibrated probability of the most probable label

    @property
    def uncertain(self) -> bool:
        return self.label is None

    def as_dict(self) -> dict:
        return {"decision": self.label if self.label is not None else UNCERTAIN, "candidates": self.candidates,
                "confidence": round(self.confidence, 4)}


@dataclass
class CalibrationProfile:
    labels: list[str]
    temperature: float
    scores: np.ndarray  # conformal scores of the calibration examples (temperature fitted without them)
    truth: np.ndarray  # their label indices
    modality: str | None = None
    before: dict = field(default_factory=dict)  # measures of the raw probabilities
    after: dict = field(default_factory=dict)  # measures under cross-fitted temperatures

    # --- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, probs: np.ndarray, truth: np.ndarray, labels: list[str], modality: str | None = None,
            folds: int = 5) -> CalibrationProfile:
        """Fit on labelled examples: probabilities (n, labels) in `labels` order and true indices."""
        probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
        if probs.ndim != 2 or probs.shape != (len(truth), len(labels)):
            raise ValueError(f"probabilities of shape {probs.shape} for {len(truth)} examples and {len(labels)} labels")
        if len(truth) < 10:
            raise ValueError(f"{len(truth)} labelled examples: calibrating needs at least 10")
        logits = calibration.as_logits(probs)
        honest, _ = calibration.cross_fitted(logits, truth, folds=folds)
        return cls(labels=list(labels), temperature=calibration.fit_temperature(logits, truth),
                   scores=conformal.scores(honest, truth), truth=truth, modality=modality,
                   before=calibration.measures(probs, truth), after=calibration.measures(honest, truth))

    # --- using ---------------------------------------------------------------------------------
    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows in `labels` order)."""
        return calibration.scale(calibration.as_logits(np.atleast_2d(probs)), self.temperature)

    def conformal(self, mondrian: bool = False) -> conformal.ConformalSets:
        return conformal.ConformalSets(self.scores, self.truth, len(self.labels), mondrian=mondrian)

    def decide(self, probs: np.ndarray, confidence: float = DEFAULT_CONFIDENCE, mondrian: bool = False,
               min_confidence: float | None = None) -> list[Decision]:
        """For each row of raw probabilities: the label when its conformal set at `confidence` holds
        only it (and, if given, its calibrated probability reaches `min_confidence`), else uncertain
        (a set of several labels, or none)."""
        calibrated = self.calibrate(probs)
        decisions = []
        for row, members in zip(calibrated, self.conformal(mondrian).sets(calibrated, confidence)):
            best = int(np.argmax(row))
            sure = len(members) == 1 and (min_confidence is None or row[best] >= min_confidence)
            decisions.append(Decision(self.labels[best] if sure else None, [self.labels[j] for j in members],
                                      float(row[best])))
        return decisions

    def order(self, labels: list[str]) -> list[int]:
        """Positions of this profile's labels in `labels` (a classifier's label list): the same set is
        required, in any order."""
        if sorted(labels) != sorted(self.labels):
            raise ConfigError(f"the calibration was fitted for labels {', '.join(self.labels)}; these are "
                              f"{', '.join(labels)}: calibrate again for this label set")
        return [labels.index(label) for label in self.labels]

    # --- storage -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "kind": KIND, "labels": self.labels, "modality": self.modality,
                "temperature": self.temperature, "before": self.before, "after": self.after,
                "examples": {"scores": [round(float(s), 6) for s in self.scores], "truth": self.truth.tolist()}}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CalibrationProfile:
        """Read a profile, naming the file and field of anything wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: not a readable calibration file ({error})") from error
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ConfigError(f"{path}: not a Sensorium calibration file (no \"kind\": \"{KIND}\")")
        if data.get("format") != FORMAT:
            raise ConfigError(f"{path}: calibration format {data.get('format')!r}; this Sensorium reads {FORMAT}")
        labels, examples = data.get("labels"), data.get("examples") or {}
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
            raise ConfigError(f"{path}: field 'labels' must list at least two label names")
        temperature = data.get("temperature")
        if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
            raise ConfigError(f"{path}: field 'temperature' must be a positive number, got {temperature!r}")
        try:
            scores = np.asarray(examples["scores"], dtype=np.float64)
            truth = np.asarray(examples["truth"], dtype=int)
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{path}: field 'examples' must hold 'scores' and 'truth' lists ({error})") from error
        if scores.ndim != 1 or scores.shape != truth.shape or not np.all(np.isfinite(scores)) or \
                (len(truth) and (truth.min() < 0 or truth.max() >= len(labels))):
            raise ConfigError(f"{path}: field 'examples' must pair one finite score with one label index each")
        return cls(labels, float(temperature), scores, truth, data.get("modality"), data.get("before") or {},
                   data.get("after") or {})
