"""A detected face and its attributes, each computed on first access and then kept.

A request pays only for the heads its fields need: ``Face.age`` runs the landmark and age
heads, ``Face.pose`` the pose and landmark heads, and so on; asking twice runs nothing again. How each value
is made, and how good it is, is in the README ("Face attributes").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Optional

import cv2
import numpy as np

from workers import heads
from workers.align import align_face
from workers.detector import Detection
from workers.heads import Heads
from workers.landmarks import eye_line_roll, mouth_opening
from workers.quality import blur_effect, completeness, illumination

# P(smile) = sigmoid(SLOPE * logit(P(happy)) + OFFSET): fr_expression's "happy" probability,
# Platt-scaled on 135 LFW faces labelled smiling or not by eye (bench/data/expression_labels.tsv);
# a smile needs P(happy) >= 0.91.
SMILE_SLOPE = 0.65
SMILE_OFFSET = -1.5
# A smile whose inner lips stand this far apart (over the mouth's width) is a laugh; on the
# labelled faces smiles measured 0.02-0.20 (10th-90th percentile), laughs 0.16-0.36.
LAUGH_OPENING = 0.2


class Smile(Enum):
    """How much a face smiles (each API version has its own codes for these)."""

    NONE = "none"
    SMILE = "smile"
    LAUGH = "laugh"


@dataclass(frozen=True)
class Pose:
    """Degrees: yaw > 0 the nose points to the image's right, pitch > 0 the face looks down,
    roll > 0 the eye line turns clockwise in the image."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Gender:
    label: str  # "male" or "female"
    probability: float  # of that label, 0.5-1


@dataclass(frozen=True)
class Expression:
    kind: Smile
    probability: float  # of "smiling" for SMILE and LAUGH, of "not smiling" for NONE; 0.5-1


@dataclass(frozen=True)
class Quality:
    blur: float  # 0 sharp - 1 blurred
    illumination: int  # mean luma of the face box, 0-255
    completeness: int  # 0 whole face in the photo, 1 cut off


class Face:
    """One detected face of one photo. Coordinates are the photo's pixels."""

    def __init__(
        self,
        detection: Detection,
        image: np.ndarray,
        models: Heads,
        landmarks68: Optional[np.ndarray] = None,
        scale: float = 1.0,
    ) -> None:
        """``landmarks68``: the points when the caller already has them (the pipeline aligns
        every embedded face by them). ``scale``: photo pixels per pixel of ``image``, which
        coordinates here are in (a large photo is decoded scaled down)."""
        self.detection = detection
        self.image = image
        self.models = models
        self.scale = scale
        if landmarks68 is not None:
            self.__dict__["landmarks68"] = landmarks68  # what cached_property would store

    @cached_property
    def landmarks68(self) -> np.ndarray:
        return heads.landmarks68(self.models, self.image, self.detection.box)

    @cached_property
    def pose(self) -> Pose:
        """Yaw and pitch from the pose head; roll from the eye line of the 68 points, which
        follows a face turned in the photo's plane more closely than the pose head's roll or
        the detector's five points do (README: "Pose")."""
        yaw, pitch, _ = heads.head_pose(self.models, self.image, self.detection.box)
        return Pose(yaw, pitch, eye_line_roll(self.landmarks68))

    @cached_property
    def age(self) -> float:
        return heads.age(self.models, self.image, self.landmarks68)

    @cached_property
    def gender(self) -> Gender:
        male = heads.male_probability(self.models, self.image, self.landmarks68)
        return Gender("male", male) if male >= 0.5 else Gender("female", 1.0 - male)

    @cached_property
    def expression(self) -> Expression:
        happy = heads.happiness(self.models, self.image, self.detection.box)
        return expression_of(happy, mouth_opening(self.landmarks68))

    @cached_property
    def quality(self) -> Quality:
        """Blur of the grey 112x112 crop the embedders see, illumination of the detector's
        box, completeness from where the five points put the whole face."""
        crop = align_face(self.image, self.detection.landmarks)
        height, width = self.image.shape[:2]
        return Quality(
            blur=blur_effect(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)),
            illumination=illumination(self.image, self.detection.box),
            completeness=completeness(self.detection.landmarks, width, height),
        )

    @cached_property
    def liveness(self) -> float:
        """Probability that the photo shows a live face rather than a recapture; a passive,
        single-frame guess (README: "Liveness"), not a security control."""
        return heads.liveness(self.models, self.image, self.detection.box)


def smile_probability(happy: float) -> float:
    """fr_expression's P(happy) -> calibrated P(smiling)."""
    happy = min(max(happy, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + math.exp(-(SMILE_SLOPE * math.log(happy / (1 - happy)) + SMILE_OFFSET)))


def expression_of(happy: float, opening: float) -> Expression:
    """The expression from P(happy) and the mouth opening: no smile below P(smile) 0.5,
    a laugh when the lips stand LAUGH_OPENING apart, else a smile."""
    smiling = smile_probability(happy)
    if smiling < 0.5:
        return Expression(Smile.NONE, 1.0 - smiling)
    return Expression(Smile.LAUGH if opening >= LAUGH_OPENING else Smile.SMILE, smiling)
