"""Pure image and geometry functions on tiny synthetic inputs with exact answers."""
from __future__ import annotations

import ast
import base64
import math
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from service.errors import ERRORS, FaceError
from service.api.params import Params, decode_base64
from service.api.scores import ScoreMap
from workers.align import ARCFACE_TEMPLATE, align_face, similarity_transform
from bench.forged_images import jpeg_header, many_scan_jpeg, png_header
from workers.image import DecodeLimits, ImageError, decode_image, fit_within, read_dimensions, reduction, sniff_format
from bench.pose_geometry import estimate_pose
from service.api.landmarks import baidu_landmark4

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "spec" / "baidu-face-api-v2.txt"

# The smallest valid GIF: a 1x1 image with a two-colour global palette.
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def small_image(width: int = 7, height: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(fmt: str, image: np.ndarray, *params: int) -> bytes:
    ok, buffer = cv2.imencode(fmt, image, list(params))
    assert ok
    return buffer.tobytes()


# --- similarity transform and alignment -------------------------------------------------


def test_similarity_transform_recovers_a_known_rotation_scale_and_translation():
    angle, scale, shift = math.radians(23.0), 1.7, np.array([12.5, -4.25])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = np.array([[0, 0], [10, 0], [0, 10], [7, 3], [-2, 5]], dtype=np.float64)
    dst = src @ (scale * rotation).T + shift

    matrix = similarity_transform(src, dst)

    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-12)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-12)


def test_similarity_transform_of_a_mirrored_point_set_is_still_a_rotation_not_a_reflection():
    src = ARCFACE_TEMPLATE
    dst = src * np.array([-1.0, 1.0])
    matrix = similarity_transform(src, dst)
    assert np.linalg.det(matrix[:, :2]) > 0


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama's similarity by SVD, with its reflection guard: the reference the closed form
    in workers/align.py must equal."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    linear = (s * d).sum() / ((src_c**2).sum() / len(src)) * (u @ np.diag(d) @ vt)
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def test_similarity_transform_equals_umeyamas_svd_solution_on_noisy_and_mirrored_points():
    rng = np.random.default_rng(7)
    for trial in range(200):
        src = ARCFACE_TEMPLATE + rng.normal(0, 3, (5, 2))
        dst = rng.normal(0, 40, (5, 2)) if trial % 2 else src * np.array([-1.0, 1.0]) + rng.normal(0, 2, (5, 2))
        np.testing.assert_allclose(similarity_transform(src, dst), umeyama(src, dst), atol=1e-9)


def test_align_face_on_the_template_points_is_the_identity_crop():
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    crop = align_face(image, ARCFACE_TEMPLATE.copy())
    assert crop.shape == (112, 112, 3)
    np.testing.assert_array_equal(crop, image)


def test_align_face_undoes_a_pure_translation_of_the_face():
    image = np.zeros((200, 200, 3), np.uint8)
    image[40:152, 30:142] = np.random.default_rng(2).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    crop = align_face(image, ARCFACE_TEMPLATE + np.array([30.0, 40.0]))
    np.testing.assert_array_equal(crop, image[40:152, 30:142])


# --- image headers and formats ----------------------------------------------------------


@pytest.mark.parametrize("fmt, name", [(".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp")])
def test_read_dimensions_gives_width_then_height_from_the_header(fmt, name):
    data = encode(fmt, small_image(7, 5))
    assert sniff_format(data) == name
    assert read_dimensions(data, name) == (7, 5)


def test_read_dimensions_of_a_progressive_jpeg():
    data = encode(".jpg", small_image(33, 17), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert b"\xff\xc2" in data  # SOF2, not the baseline SOF0
    assert read_dimensions(data, "jpeg") == (33, 17)


def test_read_dimensions_skips_an_exif_segment_before_the_frame_header():
    data = encode(".jpg", small_image(9, 4))
    exif = b"Exif\x00\x00" + b"\xff\xc0" * 40  # bytes that look like markers must be skipped
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    assert read_dimensions(data[:2] + app1 + data[2:], "jpeg") == (9, 4)


def test_read_dimensions_of_a_top_down_bmp_is_positive():
    data = bytearray(encode(".bmp", small_image(6, 3)))
    data[22:26] = struct.pack("<i", -3)  # negative height: rows stored top to bottom
    assert read_dimensions(bytes(data), "bmp") == (6, 3)


def test_sniff_format_refuses_gif_as_a_format_error():
    with pytest.raises(ImageError) as caught:
        sniff_format(TINY_GIF)
    assert caught.value.kind == "format"
    assert "GIF" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"RIFF\x24\x00\x00\x00WEBPVP8 ", b"%PDF-1.4", b"\x00\x00\x00\x00", b"\xff\xd8"],
    ids=["webp", "pdf", "zeros", "two-byte-jpeg-magic"],
)
def test_sniff_format_refuses_other_containers_as_a_format_error(data):
    with pytest.raises(ImageError) as caught:
        sniff_format(data)
    assert caught.value.kind == "format"


LIMITS = DecodeLimits(max_pixels=60_000_000, max_lossless_pixels=25_000_000, max_jpeg_scans=100, full_side=2048)


def test_decode_image_refuses_a_pixel_bomb_header_before_decoding():
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header + b"\x00" * 4
    with pytest.raises(ImageError) as caught:
        decode_image(data, LIMITS)
    assert caught.value.kind == "size"


def test_decode_image_returns_bgr_pixels_of_a_lossless_png():
    image = small_image(7, 5)
    pixels, factor = decode_image(encode(".png", image), LIMITS)
    np.testing.assert_array_equal(pixels, image)
    assert factor == 1


def test_decode_image_of_empty_bytes_is_an_empty_error():
    with pytest.raises(ImageError) as caught:
        decode_image(b"", LIMITS)
    assert caught.value.kind == "empty"


@pytest.mark.parametrize(
    "width, height, factor", [(2048, 10, 1), (4095, 10, 1), (4096, 10, 2), (10, 8192, 4), (16384, 900, 8), (60000, 1000, 8)]
)
def test_reduction_scales_down_while_the_longest_side_stays_at_least_full_side(width, height, factor):
    assert reduction(width, height, 2048) == factor


def test_a_large_jpeg_is_decoded_scaled_down_and_says_by_how_much():
    image = np.tile(np.linspace(0, 255, 4400, dtype=np.uint8)[None, :, None], (300, 1, 3))
    pixels, factor = decode_image(encode(".jpg", image), LIMITS)
    assert factor == 2 and pixels.shape == (150, 2200, 3)
    assert abs(int(pixels[75, 1100, 0]) - int(image[150, 2200, 0])) <= 3


def test_a_jpeg_with_more_scans_than_encoders_write_is_refused_unread():
    data = many_scan_jpeg(640, 480, 200)
    with pytest.raises(ImageError) as caught:
        decode_image(data, LIMITS)
    assert caught.value.kind == "format"
    assert decode_image(many_scan_jpeg(640, 480, 10), LIMITS)[0].shape == (480, 640, 3)


def test_a_png_above_the_lossless_cap_is_refused_though_a_jpeg_that_size_is_not():
    with pytest.raises(ImageError) as caught:
        decode_image(png_header(6000, 5000), LIMITS)
    assert caught.value.kind == "size"
    with pytest.raises(ImageError) as caught:
        decode_image(jpeg_header(6000, 5000), LIMITS)
    assert caught.value.kind == "format"  # passed the size checks; it has no scan to decode


def test_fit_within_scales_the_longest_side_down_to_the_limit():
    resized, scale = fit_within(np.zeros((100, 200, 3), np.uint8), 50)
    assert scale == 0.25
    assert resized.shape == (25, 50, 3)


def test_fit_within_leaves_a_small_image_untouched():
    image = np.zeros((30, 40, 3), np.uint8)
    resized, scale = fit_within(image, 640)
    assert scale == 1.0
    assert resized is image


# --- base64 ---------------------------------------------------------------------------


BYTES = bytes(range(256)) * 3 + b"\xfb\xff\xbf"  # exercises '+', '/' and every padding length


@pytest.mark.parametrize("length", [len(BYTES), len(BYTES) - 1, len(BYTES) - 2])
def test_decode_base64_accepts_text_without_padding(length):
    text = base64.b64encode(BYTES[:length]).decode().rstrip("=")
    assert decode_base64(text) == BYTES[:length]


def test_decode_base64_accepts_the_url_safe_alphabet():
    text = base64.urlsafe_b64encode(BYTES).decode()
    assert "-" in text and "_" in text
    assert decode_base64(text) == BYTES


def test_decode_base64_reads_spaces_as_plus_signs_of_an_unencoded_form():
    text = base64.b64encode(BYTES).decode()
    assert "+" in text
    assert decode_base64(text.replace("+", " ")) == BYTES


def test_decode_base64_ignores_line_breaks():
    text = base64.encodebytes(BYTES).decode()
    assert "\n" in text.strip()
    assert decode_base64(text) == BYTES


@pytest.mark.parametrize("text", ["not base64 at all!", "@@@@", "   "])
def test_decode_base64_of_garbage_is_error_216200(text):
    with pytest.raises(FaceError) as caught:
        decode_base64(text)
    assert caught.value.code == 216200


def test_params_strip_a_data_url_header_from_the_image():
    text = base64.b64encode(BYTES).decode()
    params = Params({"image": "data:image/jpeg;base64," + text})
    assert params.image(10**6) == BYTES


def test_params_strip_the_data_url_header_of_every_image_of_a_list():
    a, b = base64.b64encode(b"first").decode(), base64.b64encode(b"second").decode()
    params = Params({"images": f"data:image/png;base64,{a},data:image/jpeg;base64,{b}"})
    assert params.encoded_images(10**6) == [a, b]


# --- pose -----------------------------------------------------------------------------


def mirror(points: np.ndarray, width: float = 112.0) -> np.ndarray:
    """The same face seen in a mirror: x flipped, image-left and image-right points swapped."""
    flipped = points * np.array([-1.0, 1.0]) + np.array([width, 0.0])
    return flipped[[1, 0, 2, 4, 3]]


def test_estimate_pose_of_the_frontal_template_is_near_zero():
    yaw, pitch, roll = estimate_pose(ARCFACE_TEMPLATE)
    assert abs(yaw) < 1.0 and abs(pitch) < 1.0 and abs(roll) < 1.0


def test_estimate_pose_reads_a_nose_shifted_right_as_positive_yaw_and_the_mirror_as_negative():
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 8.0
    yaw, _, _ = estimate_pose(turned)
    mirrored_yaw, _, _ = estimate_pose(mirror(turned))
    assert yaw > 15.0
    assert mirrored_yaw == pytest.approx(-yaw, abs=1.0)


def test_estimate_pose_gives_the_eye_line_angle_as_roll_clockwise_positive():
    angle = math.radians(20.0)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = ARCFACE_TEMPLATE.mean(axis=0)
    # In image coordinates (y down) this rotation turns the face clockwise on screen.
    rotated = (ARCFACE_TEMPLATE - centre) @ rotation.T + centre
    _, _, base_roll = estimate_pose(ARCFACE_TEMPLATE)
    yaw, pitch, roll = estimate_pose(rotated)
    assert roll == pytest.approx(base_roll + 20.0, abs=1e-9)
    assert abs(yaw) < 1.0 and abs(pitch) < 1.0


def test_estimate_pose_reads_a_lower_nose_as_looking_down():
    lowered = ARCFACE_TEMPLATE.copy()
    lowered[2, 1] += 8.0
    _, pitch, _ = estimate_pose(lowered)
    assert pitch > 10.0


def test_baidu_landmark4_is_eyes_nose_and_mouth_centre():
    points = np.array([[1, 2], [5, 2], [3, 4], [2, 6], [4, 8]], dtype=np.float64)
    np.testing.assert_array_equal(baidu_landmark4(points), [[1, 2], [5, 2], [3, 4], [3, 7]])


# --- scores ---------------------------------------------------------------------------


ANCHOR_COSINES = [-1.0, 0.1, 0.3, 0.42, 1.0]
ANCHOR_SCORES = [0.0, 40.0, 70.0, 80.0, 100.0]


def test_score_map_maps_every_anchor_exactly():
    score_map = ScoreMap(ANCHOR_COSINES, ANCHOR_SCORES)
    assert [score_map.to_score(c) for c in ANCHOR_COSINES] == ANCHOR_SCORES


def test_score_map_is_monotone_and_stays_within_0_and_100():
    score_map = ScoreMap(ANCHOR_COSINES, ANCHOR_SCORES)
    scores = score_map.to_scores(np.linspace(-1.5, 1.5, 3001))
    assert np.all(np.diff(scores) >= 0)
    assert scores[0] == 0.0 and scores[-1] == 100.0


def test_score_map_interpolates_linearly_between_anchors():
    score_map = ScoreMap(ANCHOR_COSINES, ANCHOR_SCORES)
    assert score_map.to_score(0.36) == pytest.approx(75.0)


@pytest.mark.parametrize(
    "cosines, scores", [([-1, 0.5, 0.5, 1], [0, 50, 80, 100]), ([-1, 0.2, 1], [0, 90, 80])]
)
def test_score_map_refuses_anchors_that_are_not_strictly_increasing(cosines, scores):
    with pytest.raises(ValueError):
        ScoreMap(cosines, scores)


# --- error table ----------------------------------------------------------------------


def error_table_literal_codes() -> list[int]:
    """The keys of the ERRORS dict literal as written (a dict silently drops duplicates)."""
    tree = ast.parse((ROOT / "service" / "errors.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "ERRORS":
            return [key.value for key in node.value.keys]
    raise AssertionError("ERRORS literal not found")


def spec_error_table() -> dict[int, str]:
    """code -> message rows of the spec's §1.15 table."""
    text = SPEC.read_text()
    section = text[text.index("1.15 错误码") : text.index("第2章")]
    rows = re.findall(r"^(\d+)\t([^\t]+)\t", section, re.MULTILINE)
    return {int(code): message.strip() for code, message in rows}


def test_error_codes_are_written_once_each():
    codes = error_table_literal_codes()
    assert len(codes) == len(set(codes)) == len(ERRORS)


def test_error_table_has_every_code_of_the_spec_with_its_exact_message():
    spec = spec_error_table()
    assert len(spec) >= 30
    assert {code: ERRORS.get(code) for code in spec} == spec


def test_face_error_carries_the_table_message():
    error = FaceError(216402, "nothing there")
    assert (error.code, error.message, error.detail) == (216402, "face not found", "nothing there")


def test_face_error_of_an_unknown_code_raises():
    with pytest.raises(KeyError):
        FaceError(123456)
