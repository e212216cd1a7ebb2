"""Embeddings of every LFW photo, computed once with the real pipeline and cached.

The benchmarks and the score calibration need all 13,233 photos many times over; one pass
through decode -> detect -> align -> embed (~40 ms a photo) is cached in
``bench/results/lfw_embeddings_<model_id>.npz``. A photo where the detector finds no face is
recorded as a miss, never replaced by a guessed crop, so that benchmarks can count it as an
error.

Two faces are kept per photo. The service embeds the largest face ("largest"); LFW labels the
face at the centre of its 250x250 crops, and in photos with several people the largest one is
sometimes someone else, which scores the pipeline on the wrong person ("centre" is the detected
face nearest the image centre). The embedding of each face's horizontally mirrored crop is
stored too, to measure flip test-time augmentation without another pass over the photos.

A cache records the digests of the model files it was made with (``models_digest``): when
``facesvc models`` has rebuilt one (a new int8 recipe, say), the photos are embedded again
rather than the old vectors being scored as the new model's.

    python -m bench.lfw_embeddings            # compute what the cache lacks
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import config
from workers.embedder import FR_FEATURE, SFACE
from service import inference
from workers.models import MANIFEST
from workers.pipeline import Face, Pipeline, model_file

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
LFW_DIR = DATA_DIR / "lfw"
RESULTS_DIR = ROOT / "bench" / "results"
PAIR_FILES = ("pairs_devtrain.tsv", "pairs_devtest.tsv", "pairs.tsv")
PART_DIMS = {SFACE.name: SFACE.dim, FR_FEATURE.name: FR_FEATURE.dim}
# Benchmark variants: the embedding models whose cosines are averaged, and whether each
# model's vector is the sum of the plain and the mirrored crop's (flip augmentation).
PROFILES: dict[str, tuple[tuple[str, ...], bool]] = {
    "sface": (("sface",), False),
    "fr_feature": (("fr_feature",), False),
    "fused": (("sface", "fr_feature"), False),
    "sface-flip": (("sface",), True),
    "fr_feature-flip": (("fr_feature",), True),
    "fused-flip": (("sface", "fr_feature"), True),
}
CHECKPOINT_EVERY = 1000
# Every face the detector reports; the largest and the centred one are chosen among them.
MAX_FACES = 1000


@dataclass
class LfwEmbeddings:
    """Per photo, rows aligned with ``paths``: ``arrays`` maps each of ARRAYS to an (N, ...) array.

    ``faces`` is the number of faces detected (0: a miss, whose vectors are zero rows),
    ``seconds`` the time decode + detect + embed of the largest face took (the service's cost),
    ``mirror_seconds`` the extra time to embed its mirrored crop; ``largest``, ``centre`` and their
    ``_mirror`` variants are (N, D) float32 embeddings."""

    model_id: str
    paths: list[str]
    arrays: dict[str, np.ndarray]
    models: str = ""  # models_digest of the files that made it ("": a cache from before)

    @property
    def detected(self) -> np.ndarray:
        return self.arrays["faces"] > 0

    @property
    def seconds(self) -> np.ndarray:
        return self.arrays["seconds"]

    def rows(self, paths: list[str]) -> np.ndarray:
        """Row index of each path."""
        index = {p: i for i, p in enumerate(self.paths)}
        return np.array([index[p] for p in paths], dtype=np.int64)

    def profile_vectors(self, profile: str, face: str) -> np.ndarray:
        """(N, d) vectors of the chosen face whose inner products are the profile's similarity."""
        return profile_vectors(self.model_id, profile, self.arrays[face], self.arrays[f"{face}_mirror"])


FACES = ("largest", "centre")
ARRAYS = ("faces", "seconds", "mirror_seconds") + tuple(f"{f}{m}" for f in FACES for m in ("", "_mirror"))


def profile_vectors(model_id: str, profile: str, vectors: np.ndarray, mirrored: np.ndarray | None = None) -> np.ndarray:
    """Re-weight ``model_id`` embeddings into the profile's: the mean of the chosen models'
    cosines, each model's part L2-normalised (zero rows stay zero). Flip profiles add the
    mirrored crop's part before normalising."""
    parts, flip = PROFILES[profile]
    if flip and mirrored is None:
        raise ValueError(f"profile {profile} needs the mirrored-crop embeddings")
    offsets, start = {}, 0
    for name in model_id.split("+"):
        offsets[name] = (start, start + PART_DIMS[name])
        start += PART_DIMS[name]
    blocks = []
    for name in parts:
        lo, hi = offsets[name]
        block = vectors[:, lo:hi] + (mirrored[:, lo:hi] if flip else 0.0)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(block / np.maximum(norms, 1e-12))
    return (np.concatenate(blocks, axis=1) / np.sqrt(len(parts))).astype(np.float32)


def identity(path: str) -> str:
    """LFW paths are ``images/<Name>/<Name>_NNNN.jpg``."""
    return path.split("/")[1]


def read_pairs(name: str) -> tuple[list[str], list[str], np.ndarray]:
    """(path1s, path2s, same) from one of LFW's header-less pair files."""
    rows = [line.rstrip("\n").split("\t") for line in (LFW_DIR / name).read_text().splitlines() if line]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] == "1" for r in rows])


def lfw_photos() -> list[str]:
    """Every photo referenced by View 1, View 2 and the identification split (all of LFW)."""
    photos: set[str] = set()
    for name in PAIR_FILES:
        first, second, _ = read_pairs(name)
        photos.update(first, second)
    lines = (LFW_DIR / "identification.tsv").read_text().splitlines()[1:]
    photos.update(line.split("\t")[2] for line in lines if line)
    return sorted(photos)


def cache_path(model_id: str, precision: str = "fp32") -> Path:
    """One cache per model id and precision of the embedders' graphs (fp32 keeps its old name)."""
    suffix = "" if precision == "fp32" else f"_{precision}"
    return RESULTS_DIR / f"lfw_embeddings_{model_id}{suffix}.npz"


def centre_face(faces: list[Face], image: np.ndarray) -> Face:
    """The face whose box centre is nearest the image centre (LFW's labelled face)."""
    height, width = image.shape[:2]

    def distance(face: Face) -> float:
        left, top, w, h = face.detection.box
        return float(np.hypot(left + w / 2 - width / 2, top + h / 2 - height / 2))

    return min(faces, key=distance)


def embed_photo(pipeline: Pipeline, data: bytes) -> dict[str, object]:
    """One photo's entries of ARRAYS (only ``faces`` and ``seconds`` on a miss).

    Timed like ``Pipeline.embed_largest``, whose steps these are; all faces are detected
    anyway (the detector scores the whole image), so listing them costs nothing extra."""
    start = time.perf_counter()
    image = pipeline.decode(data)
    faces = pipeline.detect(image, MAX_FACES)
    if not faces:
        return {"faces": 0, "seconds": time.perf_counter() - start}
    largest = pipeline.embed(image, faces[:1])[0]
    result: dict[str, object] = {"faces": len(faces), "seconds": time.perf_counter() - start, "largest": largest}
    start = time.perf_counter()
    result["largest_mirror"] = embed_mirrored(pipeline, image, faces[0])
    result["mirror_seconds"] = time.perf_counter() - start
    centre = centre_face(faces, image)
    if centre is faces[0]:
        result["centre"], result["centre_mirror"] = largest, result["largest_mirror"]
    else:
        result["centre"] = pipeline.embed(image, [centre])[0]
        result["centre_mirror"] = embed_mirrored(pipeline, image, centre)
    return result


def embed_mirrored(pipeline: Pipeline, image: np.ndarray, face: Face) -> np.ndarray:
    """Embedding of the horizontally mirrored aligned crop (flip test-time augmentation)."""
    crop = np.ascontiguousarray(pipeline.crop(image, face)[:, ::-1])
    return pipeline.embedder.embed(crop[None])[0]


def save(cache: LfwEmbeddings, path: Path) -> None:
    """Write atomically so an interrupted run leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, model_id=np.array(cache.model_id), paths=np.array(cache.paths), models=np.array(cache.models), **cache.arrays)
    os.replace(tmp, path)


def load(path: Path) -> LfwEmbeddings:
    with np.load(path) as data:
        models = str(data["models"]) if "models" in data.files else ""
        return LfwEmbeddings(str(data["model_id"]), [str(p) for p in data["paths"]], {k: data[k] for k in ARRAYS}, models)


def models_digest(model_id: str, precision: str) -> str:
    """Digest of the cached model files an embedding of ``model_id`` at ``precision`` passes
    through (the manifest's sha256 of each): detector, landmark head, embedders."""
    manifest = json.loads((config.load_settings().model_cache / MANIFEST).read_text())
    names = ["yunet", "fr_landmark"] + [model_file(name, precision) for name in model_id.split("+")]
    return hashlib.sha256(" ".join(f"{name}:{manifest[name]['sha256']}" for name in names).encode()).hexdigest()


def compute(pipeline: Pipeline, photos: list[str], path: Path) -> LfwEmbeddings:
    """Embed the photos the cache at ``path`` lacks, checkpointing as it goes."""
    done = load(path) if path.exists() else None
    if done is not None and done.model_id != pipeline.model_id:
        raise ValueError(f"{path} holds {done.model_id}, the pipeline is {pipeline.model_id}")
    models = models_digest(pipeline.model_id, pipeline.precision)
    if done is not None and done.models != models:
        log.info("%s was made with other model files: embedding every photo again", path.name)
        done = None
    n, dim = len(photos), pipeline.embedder.dim
    arrays = {"faces": np.zeros(n, np.int32), "seconds": np.full(n, np.nan), "mirror_seconds": np.full(n, np.nan)}
    arrays.update({name: np.zeros((n, dim), np.float32) for name in ARRAYS[3:]})
    cache = LfwEmbeddings(pipeline.model_id, photos, arrays, models)
    known = {p: i for i, p in enumerate(done.paths)} if done else {}
    todo = []
    for i, photo in enumerate(photos):
        j = known.get(photo)
        if j is None or np.isnan(done.seconds[j]):
            todo.append(i)
            continue
        for name in ARRAYS:
            arrays[name][i] = done.arrays[name][j]
    log.info("%d photos, %d cached, %d to embed", n, n - len(todo), len(todo))
    # One core for this job: the machine is shared, and per-photo times are per-core figures.
    cv2.setNumThreads(1)
    for count, i in enumerate(todo, 1):
        for name, value in embed_photo(pipeline, (LFW_DIR / photos[i]).read_bytes()).items():
            arrays[name][i] = value
        if count % CHECKPOINT_EVERY == 0 or count == len(todo):
            save(cache, path)
            log.info("%d/%d embedded, %d misses so far", count, len(todo), int((~cache.detected[: i + 1]).sum()))
    return cache


def ensure_embeddings(model_id: str | None = None) -> LfwEmbeddings:
    """The cached embeddings of all LFW photos at the configured precision
    (FACESVC_MODELS__PRECISION), computing whatever is missing.

    Without ``model_id`` the configured profile's pipeline decides (and is loaded); with one,
    a complete cache for that model is returned without loading any model."""
    precision = config.load_settings().models.precision
    if model_id is not None and cache_path(model_id, precision).exists():
        cache = load(cache_path(model_id, precision))
        complete = not np.isnan(cache.seconds).any() and set(cache.paths) >= set(lfw_photos())
        if complete and cache.models == models_digest(model_id, precision):
            return cache
    pipeline = load_pipeline()
    if model_id is not None and pipeline.model_id != model_id:
        raise ValueError(f"configured pipeline embeds {pipeline.model_id}, not {model_id}")
    return compute(pipeline, lfw_photos(), cache_path(pipeline.model_id, pipeline.precision))


def load_pipeline() -> Pipeline:
    """The service's pipeline with the environment's settings."""
    return inference.load_pipeline(config.load_settings())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cache = ensure_embeddings()
    ms = 1000 * cache.seconds
    faces = cache.arrays["faces"]
    print(
        f"{cache.model_id}: {len(cache.paths)} photos, {int((faces == 0).sum())} misses, "
        f"{int((faces > 1).sum())} with several faces, {ms.mean():.1f} ms/photo (median {np.median(ms):.1f}), "
        f"mirror +{1000 * cache.arrays['mirror_seconds'][cache.detected].mean():.1f} ms"
    )


if __name__ == "__main__":
    main()

