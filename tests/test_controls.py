"""v3's quality_control and liveness_control levels (service/api/v3/controls.py) on real faces:
the degradations bench/control_levels.py measured them on fail with their codes, NONE never
fails, and each level rejects everything the one below it rejects."""
from __future__ import annotations

import numpy as np
import pytest

from bench.control_levels import DEGRADATIONS
from service.api.v3.controls import LEVELS, LIVENESS_THRESHOLDS, liveness_failure, quality_failure
from tests.helpers import photo
from workers.attributes import Face, Quality
from workers.pipeline import Pipeline

SHARP = "images/person02/img3.jpg"  # blur 0.20, illumination 136, whole
HANDFUL = (
    SHARP,
    "images/person01/img11.jpg",
    "images/person05/img62.jpg",
    "images/person10/img43.jpg",
    "images/person13/img39.jpg",
)
# Degradations around the levels' limits, so that the levels disagree on some faces.
STRADDLING = ("blur_1", "blur_2", "dark_x0.5", "bright_x2", "cut_chin")


def largest(pipeline: Pipeline, image: np.ndarray) -> Face:
    faces = pipeline.detect(image, 1)
    assert faces, "no face found"
    return faces[0]


def degraded(pipeline: Pipeline, relative: str, name: str) -> Face:
    image = pipeline.decode(photo(relative))
    return largest(pipeline, DEGRADATIONS[name](image, largest(pipeline, image).detection.box))


@pytest.fixture(scope="module")
def faces(pipeline) -> list[Face]:
    """The handful of portraits, each also degraded in every STRADDLING way."""
    found = [largest(pipeline, pipeline.decode(photo(p))) for p in HANDFUL]
    return found + [degraded(pipeline, p, name) for p in HANDFUL for name in STRADDLING]


def test_a_sharp_portrait_passes_high(pipeline):
    face = largest(pipeline, pipeline.decode(photo(SHARP)))
    assert quality_failure("HIGH", face.quality) is None


@pytest.mark.parametrize(
    "degradation, code", [("blur_4", 223114), ("dark_x0.15", 223115), ("cut_side", 223116), ("cut_chin", 223116)]
)
def test_a_degraded_portrait_fails_low_with_its_code(pipeline, degradation, code):
    face = degraded(pipeline, SHARP, degradation)
    assert quality_failure("LOW", face.quality) == code
    assert quality_failure("NONE", face.quality) is None


def test_the_first_failing_measure_names_the_code():
    assert quality_failure("LOW", Quality(blur=0.99, illumination=0, completeness=1)) == 223114
    assert quality_failure("LOW", Quality(blur=0.2, illumination=255, completeness=1)) == 223115
    assert quality_failure("LOW", Quality(blur=0.2, illumination=130, completeness=1)) == 223116


def test_none_never_fails(faces):
    assert all(quality_failure("NONE", f.quality) is None for f in faces)
    assert all(liveness_failure("NONE", f.liveness) is None for f in faces)
    assert liveness_failure("NONE", 0.0) is None


def test_each_level_rejects_what_the_one_below_rejects(faces):
    rejected = {level: {i for i, f in enumerate(faces) if quality_failure(level, f.quality)} for level in LEVELS}
    for lower, higher in zip(LEVELS, LEVELS[1:]):
        assert rejected[lower] <= rejected[higher], (lower, higher)
    assert rejected["LOW"] < rejected["HIGH"]  # the straddling degradations tell the levels apart


def test_liveness_levels_are_monotone(faces):
    scores = [f.liveness for f in faces] + list(np.linspace(0.0, 1.0, 201))
    rejected = {level: {s for s in scores if liveness_failure(level, s) == 223120} for level in LEVELS}
    for lower, higher in zip(LEVELS, LEVELS[1:]):
        assert rejected[lower] < rejected[higher], (lower, higher)
    assert liveness_failure("HIGH", 1.0) is None


def test_faceverify_thresholds_rise_with_the_false_rejection_rate():
    """Baidu's keys name false-rejection rates: rejecting more live faces takes a higher cut-off."""
    assert set(LIVENESS_THRESHOLDS) == {"frr_1e-4", "frr_1e-3", "frr_1e-2"}
    assert 0 < LIVENESS_THRESHOLDS["frr_1e-4"] <= LIVENESS_THRESHOLDS["frr_1e-3"] <= LIVENESS_THRESHOLDS["frr_1e-2"] < 1
