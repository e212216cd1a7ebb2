"""v3's image inputs (v3 spec §2.5-§2.7): ``image`` with ``image_type`` BASE64, URL or
FACE_TOKEN becomes the faces a call works on, each with its face token; photos' faces pass
quality_control and liveness_control, and are remembered under their tokens for an hour.

A FACE_TOKEN input brings the embedding it was made with and no pixels: controls were checked,
or not, when its photo came, and detect answers what it answered then (README, "v3").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from service import inference
from service.api import url_images
from service.api.endpoint import app_id, services
from service.api.params import Params, decode_base64
from service.api.v3 import shapes
from service.api.v3.controls import LEVELS, liveness_failure, quality_failure
from service.api.v3.schema import IMAGE_TYPES, TOKEN_MAX_BYTES
from service.errors import FaceError
from service.library import enrolment
from service.library.face_library import photo_digest
from service.store.faces import face_token
from workers.pipeline import Face


@dataclass(frozen=True)
class Seen:
    """A face of the request: its token and embedding, the photo's digest, and the detected
    ``face`` (None for a FACE_TOKEN input, which has ``answered`` instead: detect's basics
    from when its photo came, or None for a registered face)."""

    token: str
    vector: np.ndarray
    digest: str
    face: Optional[Face] = None
    answered: Optional[dict] = None

    def placement(self) -> dict:
        """``location`` and ``face_probability``, from the photo or as first answered."""
        if self.face is not None:
            return shapes.placement(self.face)
        return {k: v for k, v in (self.answered or {}).items() if k in ("location", "face_probability")}


@dataclass(frozen=True)
class Controls:
    """quality_control and liveness_control of one image."""

    quality: str
    liveness: str

    @classmethod
    def of(cls, params: Params) -> "Controls":
        return cls(level(params, "quality_control"), level(params, "liveness_control"))

    def failure(self, face: Face) -> Optional[FaceError]:
        """The error of the first control the face fails; None when it passes them all. A
        measure's head runs only when its control is asked for (NONE costs nothing)."""
        code = (self.quality != "NONE" and quality_failure(self.quality, face.quality)) or (
            self.liveness != "NONE" and liveness_failure(self.liveness, face.liveness)
        )
        return FaceError(code, f"{self.quality}/{self.liveness} control") if code else None


NO_CONTROLS = Controls("NONE", "NONE")


def level(params: Params, name: str) -> str:
    """quality_control or liveness_control."""
    return params.choice(name, LEVELS, "NONE", upper=True)


def check_image(params: Params) -> None:
    """image and image_type are there and well-formed: a call checks them before the library."""
    params.text("image")
    image_type(params)
    level(params, "quality_control")
    level(params, "liveness_control")


def image_type(params: Params) -> str:
    params.text("image_type")  # required: 222001 when missing, before any format error
    return params.choice("image_type", IMAGE_TYPES, "", upper=True)


def photo_bytes(params: Params, kind: str, limit: int) -> bytes:
    """The photo of a BASE64 or URL image."""
    text = params.text("image") or ""
    if kind == "URL":
        try:
            return url_images.fetch_image(text.strip(), url_policy())
        except url_images.UrlImageError as error:
            raise FaceError(222204, str(error)) from None
    if len(text) >= limit:
        raise FaceError(216202, f"the base64 image must be smaller than {limit} bytes", param="image")
    return decode_base64(text)


def url_policy() -> url_images.UrlPolicy:
    settings = services().settings.url_images
    allow = tuple(entry.strip() for entry in settings.allow.split(",") if entry.strip())
    return url_images.UrlPolicy(
        allow=allow, timeout_s=settings.timeout_seconds, max_bytes=settings.max_bytes, max_redirects=settings.max_redirects
    )


def token_face(params: Params) -> Seen:
    """The face a FACE_TOKEN image stands for; 222209 when it is unknown or has expired."""
    token = (params.text("image") or "").strip()
    if len(token) > TOKEN_MAX_BYTES or not token.isascii() or not token.isalnum():
        raise FaceError(216100, "a face token is up to 64 letters and digits", param="image")
    svc = services()
    found = svc.library.token_face(app_id(), token)
    if found is None or found.model != svc.pipeline.model_id:
        raise FaceError(222209, f"face token {token}")
    answered = {**json.loads(found.face), **json.loads(found.pose or "{}")} if found.face else None
    return Seen(token, found.vector, found.digest, answered=answered)


def largest_face(params: Params, limit: int, controls: Controls = NO_CONTROLS, enrolling: bool = False) -> Seen:
    """The image's largest face, embedded, having passed the controls and, when ``enrolling``,
    the enrolment gate. A FACE_TOKEN has no pixels left to measure: it passes both."""
    kind = image_type(params)
    if kind == "FACE_TOKEN":
        return token_face(params)
    data = photo_bytes(params, kind, limit)
    probe = inference.probe(services().pipeline, data)
    failure = controls.failure(probe.face)
    if failure:
        raise failure
    if enrolling:
        enrolment.check(probe.face, services().settings.enrolment)
    digest = photo_digest(data)
    seen = Seen(face_token(app_id(), digest), probe.vector, digest, probe.face)
    remember([seen])
    return seen


def all_faces(params: Params, limit: int, max_faces: int) -> list[Seen]:
    """Up to ``max_faces`` faces of the image, largest first, embedded (a token stays usable
    as input, so every face answered gets its embedding now); the caller ``remember``s them."""
    kind = image_type(params)
    if kind == "FACE_TOKEN":
        return [token_face(params)]
    data = photo_bytes(params, kind, limit)
    pipeline = services().pipeline
    faces = inference.detect(pipeline, data, max_faces)
    vectors = pipeline.embed(faces[0].image, faces)
    digest = photo_digest(data)
    return [Seen(face_token(app_id(), digest, i), vector, digest, face) for i, (face, vector) in enumerate(zip(faces, vectors))]


def remember(seen: list[Seen], poses: Optional[list[dict]] = None) -> None:
    """Keep the photos' faces for their tokens' lifetime (settings.face_tokens), each with its
    placement and the pose detect answered (``poses``; a face seen again keeps its pose)."""
    svc = services()
    fresh = [
        (s.token, svc.pipeline.model_id, s.digest, s.vector, json.dumps(s.placement()), json.dumps(poses[i]) if poses else "")
        for i, s in enumerate(seen)
        if s.face is not None
    ]
    tokens = svc.settings.face_tokens
    svc.library.remember_faces(app_id(), fresh, tokens.ttl_seconds, tokens.max_per_app)
