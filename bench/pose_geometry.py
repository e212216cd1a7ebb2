"""Head pose estimated from the detector's five points: the baseline bench/attributes.py
measures the service's pose against.

A geometric estimate, not a pose model. The service reports the pose head's yaw and pitch and
the 68-point eye line's roll instead (workers/attributes.py), and they beat this (README). Roll is the angle of the
eye line; yaw and pitch come from where the nose tip sits between the eyes and between eyes and
mouth, compared with the frontal ArcFace template. It can only be as good as the detector's
points, and YuNet's points follow a face rolled in the image only partly (figures in the README).
"""
from __future__ import annotations

import math

import numpy as np

from workers.align import ARCFACE_TEMPLATE

# Nose tip between the eye line (0) and the mouth line (1) on a frontal face.
_FRONTAL_NOSE_DROP = float(
    (ARCFACE_TEMPLATE[2, 1] - ARCFACE_TEMPLATE[:2, 1].mean())
    / (ARCFACE_TEMPLATE[3:, 1].mean() - ARCFACE_TEMPLATE[:2, 1].mean())
)
# How far the nose tip stands out of the face plane, relative to half the eye distance
# (yaw) and to the eye-mouth distance (pitch): average adult proportions.
_NOSE_DEPTH_YAW = 0.9
_NOSE_DEPTH_PITCH = 0.5


def estimate_pose(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees. roll > 0: clockwise in the image; yaw > 0: the nose
    points to the image's right; pitch > 0: the face looks down (``workers.attributes.Pose``'s signs)."""
    left_eye, right_eye, nose = points[0], points[1], points[2]
    mouth = (points[3] + points[4]) / 2
    eye_vec = right_eye - left_eye
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    # Undo the roll so the remaining offsets are horizontal and vertical in the face's frame.
    cos, sin = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    rotation = np.array([[cos, -sin], [sin, cos]])
    eye_mid = (left_eye + right_eye) / 2
    nose_r = rotation @ (nose - eye_mid)
    mouth_r = rotation @ (mouth - eye_mid)
    half_eye = max(np.linalg.norm(eye_vec) / 2, 1e-6)
    yaw = math.degrees(math.atan(nose_r[0] / half_eye / _NOSE_DEPTH_YAW))
    drop = nose_r[1] / max(mouth_r[1], 1e-6)
    pitch = math.degrees(math.asin(float(np.clip((drop - _FRONTAL_NOSE_DROP) / _NOSE_DEPTH_PITCH, -1, 1))))
    return yaw, pitch, roll

