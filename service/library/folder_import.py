"""``facesvc import``: register a folder of photos, one sub-folder per uid, into one group.

Photos are embedded in threads (ONNX Runtime and OpenCV release the GIL, one intra-op thread
each) and written one by one with ``Library.put_faces``, so an interrupted import keeps what
it wrote. A rerun skips every photo whose digest is already registered for its uid in the
group (the same sha256 that answers 216616), which makes the import resumable.
"""
from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from service import inference
from service.errors import FaceError
from service.library.face_library import Library, NewFace, photo_digest
from service.library.ids import UID_MAX_BYTES, check_id
from workers.pipeline import Pipeline

log = logging.getLogger(__name__)
NO_FACE = 216402
IMAGE_EXISTED = 216616


@dataclass
class ImportSummary:
    registered: int = 0
    skipped: int = 0  # already registered: an earlier run, or the same photo twice
    no_face: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    bad_folders: list[Path] = field(default_factory=list)  # names that are not valid uids

    def lines(self) -> list[str]:
        """The summary an operator reads: counts, then each photo that needs a look."""
        out = [
            f"registered {self.registered}, already there {self.skipped}, "
            f"without a face {len(self.no_face)}, unreadable {len(self.unreadable)}, "
            f"folders skipped {len(self.bad_folders)}"
        ]
        out += [f"no face: {path}" for path in sorted(self.no_face)]
        out += [f"unreadable: {path} ({reason})" for path, reason in sorted(self.unreadable)]
        out += [f"not a uid (letters, digits, _ only): {path}" for path in sorted(self.bad_folders)]
        return out


@dataclass(frozen=True)
class Photo:
    uid: str
    path: Path


def read_user_info(path: Path, max_bytes: int) -> dict[str, str]:
    """uid -> user_info from a two-column CSV (a ``uid,user_info`` header is optional)."""
    infos: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["uid", "user_info"]):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{number}: expected uid,user_info")
            uid, info = row[0].strip(), row[1]
            if len(info.encode()) > max_bytes:
                raise ValueError(f"{path}:{number}: user_info longer than {max_bytes} bytes")
            infos[uid] = info
    return infos


def find_photos(folder: Path, summary: ImportSummary) -> list[Photo]:
    """Every file in the uid sub-folders, sorted; invalid uid folder names go to the summary."""
    photos = []
    for user_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            uid = check_id(user_dir.name, UID_MAX_BYTES, "uid")
        except FaceError:
            summary.bad_folders.append(user_dir)
            continue
        photos += [Photo(uid, p) for p in sorted(user_dir.iterdir()) if p.is_file() and not p.name.startswith(".")]
    return photos


class FolderImport:
    """One import run into (app, group)."""

    def __init__(self, pipeline: Pipeline, library: Library, app: str, group: str, user_info: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.library = library
        self.app = app
        self.group = group
        self.user_info = user_info

    def run(self, folder: Path, workers: int, progress: bool = True) -> ImportSummary:
        summary = ImportSummary()
        photos = find_photos(folder, summary)
        known = {uid: self.library.photo_digests(self.app, self.group, uid) for uid in {p.uid for p in photos}}
        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {pool.submit(self.register, photo, known[photo.uid]): photo for photo in photos}
            for future in tqdm(as_completed(futures), total=len(futures), unit="photo", disable=not progress):
                self.count(summary, futures[future], future.result())
        return summary

    def register(self, photo: Photo, known: set[str]) -> Optional[FaceError]:
        """Register one photo; None when done, else the FaceError that stopped it."""
        data = photo.path.read_bytes()
        digest = photo_digest(data)
        if digest in known:
            return FaceError(IMAGE_EXISTED)
        try:
            vector = inference.embed_largest(self.pipeline, data)
            self.library.put_faces(
                self.app, photo.uid, [self.group], [NewFace(digest, vector)], self.user_info.get(photo.uid), replace=False
            )
        except FaceError as error:
            return error
        return None

    @staticmethod
    def count(summary: ImportSummary, photo: Photo, error: Optional[FaceError]) -> None:
        if error is None:
            summary.registered += 1
        elif error.code == IMAGE_EXISTED:
            summary.skipped += 1
        elif error.code == NO_FACE:
            summary.no_face.append(photo.path)
        else:
            summary.unreadable.append((photo.path, error.detail or error.message))
