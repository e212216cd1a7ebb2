"""Cosine similarity -> Baidu's 0-100 score, one monotone map per embedding model.

The map is piecewise linear through anchor points calibrated on LFW View 1 by
``bench/calibrate.py`` (``service/calibration.json``): score 80 sits at the cosine where the
false-accept rate is 1e-4, the other anchors at other FARs, -1 -> 0 and 1 -> 100.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


class ScoreMap:
    def __init__(self, cosines: list[float], scores: list[float]) -> None:
        if any(b <= a for a, b in zip(cosines, cosines[1:])) or any(b <= a for a, b in zip(scores, scores[1:])):
            raise ValueError("score anchors must be strictly increasing")
        self.cosines = np.asarray(cosines, dtype=np.float64)
        self.scores = np.asarray(scores, dtype=np.float64)

    def to_scores(self, cosines: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(cosines, -1.0, 1.0), self.cosines, self.scores)

    def to_score(self, cosine: float) -> float:
        return round(float(self.to_scores(np.asarray([cosine]))[0]), 5)

    @classmethod
    @lru_cache(maxsize=None)
    def for_model(cls, model_id: str) -> "ScoreMap":
        calibration = json.loads(CALIBRATION_FILE.read_text())
        if model_id not in calibration:
            raise KeyError(f"no score calibration for model {model_id}: run bench/calibrate.py")
        anchors = calibration[model_id]["anchors"]
        return cls([a["cosine"] for a in anchors], [a["score"] for a in anchors])
