"""v3's quality_control and liveness_control: what each level demands of a face, and the
liveness cut-offs of faceverify's ``thresholds``. Numbers only; no request, no envelope.

The numbers are measured (PROVISIONAL, filled in from the bench below).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from workers.attributes import Quality

LEVELS = ("NONE", "LOW", "NORMAL", "HIGH")

FUZZY = 223114  # face is fuzzy
BAD_LIGHT = 223115  # face light is not good
INCOMPLETE = 223116  # incomplete face
NOT_LIVE = 223120  # liveness check fail


@dataclass(frozen=True)
class Level:
    """A face passes when blur <= max_blur, min_illumination <= illumination <=
    max_illumination, completeness is 0 where whole_face, and liveness >= min_liveness."""

    max_blur: float
    min_illumination: int
    max_illumination: int
    whole_face: bool
    min_liveness: float

    def quality_failure(self, quality: Quality) -> Optional[int]:
        """The code of the first failing measure (blur, illumination, completeness), or None."""
        if quality.blur > self.max_blur:
            return FUZZY
        if not self.min_illumination <= quality.illumination <= self.max_illumination:
            return BAD_LIGHT
        if self.whole_face and quality.completeness:
            return INCOMPLETE
        return None

    def liveness_failure(self, liveness: float) -> Optional[int]:
        return NOT_LIVE if liveness < self.min_liveness else None


CONTROLS: dict[str, Level] = {
    "NONE": Level(max_blur=1.0, min_illumination=0, max_illumination=255, whole_face=False, min_liveness=0.0),
    "LOW": Level(max_blur=0.7, min_illumination=40, max_illumination=255, whole_face=True, min_liveness=0.01),
    "NORMAL": Level(max_blur=0.6, min_illumination=60, max_illumination=240, whole_face=True, min_liveness=0.05),
    "HIGH": Level(max_blur=0.55, min_illumination=80, max_illumination=220, whole_face=True, min_liveness=0.2),
}

LIVENESS_THRESHOLDS: dict[str, float] = {"frr_1e-4": 0.9999, "frr_1e-3": 0.999, "frr_1e-2": 0.99}


def quality_failure(level: str, quality: Quality) -> Optional[int]:
    """Baidu's code of the first measure (blur, illumination, completeness) of ``quality`` that
    fails ``level``, or None when the face passes."""
    return CONTROLS[level].quality_failure(quality)


def liveness_failure(level: str, liveness: float) -> Optional[int]:
    """223120 when ``liveness`` fails ``level``, else None."""
    return CONTROLS[level].liveness_failure(liveness)
