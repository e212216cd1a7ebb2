"""The enrolment gate: a registration photo whose face would identify badly is refused before
anything is stored, so that the caller enrols the person again with a better photo (a poor
gallery photo costs every later identify of that person; a poor probe costs one request).

One owner for both API versions: the error carries v2's 216615 and the measure that failed,
which v3 answers with its quality code (service/api/v3/errors.py); both show the measure and
its limit after the message. Limits: config.defaults.Enrolment, measured by
bench/enrolment_gate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from config.defaults import Enrolment
from service.errors import FaceError
from workers.attributes import Face

REFUSED = 216615  # fail to process images


@dataclass(frozen=True)
class Measures:
    """What the gate looks at of one face: box width in decoded pixels, blur (0-1),
    illumination (0-255), completeness (1: cut by the photo's edge), pose in degrees."""

    width: float
    blur: float
    illumination: float
    completeness: float
    yaw: float
    pitch: float
    roll: float

    @classmethod
    def of(cls, face: Face) -> "Measures":
        """Runs the pose head and the quality measures (the embedding's points are reused)."""
        quality, pose = face.quality, face.pose
        return cls(face.detection.box[2], quality.blur, quality.illumination, quality.completeness, pose.yaw, pose.pitch, pose.roll)


@dataclass(frozen=True)
class Refusal:
    measure: str  # size, completeness, blur, illumination or pose: v3's code depends on it
    reason: str


def failure(gate: Enrolment, m: Measures) -> Optional[Refusal]:
    """The first limit of ``gate`` the face fails, or None. Size comes first: the other
    measures of a tiny face mean little."""
    if m.width < gate.min_face_px:
        return Refusal("size", f"face {m.width:.0f} px wide, enrolment needs at least {gate.min_face_px} px")
    if gate.whole_face and m.completeness:
        return Refusal("completeness", "face cut by the photo's edge, enrolment needs the whole face")
    if m.blur > gate.max_blur:
        return Refusal("blur", f"blur {m.blur:.2f}, enrolment allows at most {gate.max_blur:.2f}")
    if not gate.min_illumination <= m.illumination <= gate.max_illumination:
        return Refusal("illumination", f"illumination {m.illumination:.0f}, enrolment needs {gate.min_illumination}-{gate.max_illumination}")
    for name, angle, limit in (("yaw", m.yaw, gate.max_yaw), ("pitch", m.pitch, gate.max_pitch), ("roll", m.roll, gate.max_roll)):
        if abs(angle) > limit:
            return Refusal("pose", f"{name} {angle:.0f} degrees, enrolment allows at most {limit:.0f} either way")
    return None


def check(face: Face, gate: Enrolment) -> None:
    """Raise the gate's FaceError when it is on and ``face`` fails it."""
    if not gate.enabled:
        return
    refusal = failure(gate, Measures.of(face))
    if refusal:
        raise FaceError(REFUSED, refusal.reason, measure=refusal.measure)
