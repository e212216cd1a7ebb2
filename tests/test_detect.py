"""detect (spec §1.3) through HTTP: answer shape, options, request forms and every error path."""
from __future__ import annotations

import base64
import struct
import time

import cv2
import numpy as np
import pytest

from tests.helpers import assert_error, b64, photo

PORTRAIT = "images/person01/img11.jpg"  # 600x800, one face, 56 KB
SMALL_PORTRAIT = "images/person05/img62.jpg"  # 23 KB: small enough for a query string
COUPLE = "extras/couple.jpg"
CROWD = "extras/selfie-many-people.jpg"
DEFAULT_KEYS = ["location", "face_probability", "rotation_angle", "yaw", "pitch", "roll"]
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def image_size(relative: str) -> tuple[int, int]:
    height, width = cv2.imdecode(np.frombuffer(photo(relative), np.uint8), cv2.IMREAD_COLOR).shape[:2]
    return width, height


def png_claiming(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", 0)
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", 0)


# --- the answer ------------------------------------------------------------------------


def test_detect_answers_the_shape_of_spec_1_3_3(api):
    answer = api.call("detect", image=b64(photo(PORTRAIT)))
    assert set(answer) == {"log_id", "result_num", "result"}
    assert isinstance(answer["log_id"], int) and 0 <= answer["log_id"] < 2**64
    assert answer["result_num"] == 1 == len(answer["result"])
    face = answer["result"][0]
    assert sorted(face) == sorted(DEFAULT_KEYS)
    location = face["location"]
    assert sorted(location) == ["height", "left", "top", "width"]
    assert all(type(location[k]) is int and location[k] >= 0 for k in location)
    assert location["width"] > 50 and location["height"] > 50
    width, height = image_size(PORTRAIT)
    assert location["left"] + location["width"] <= width + 1
    assert location["top"] + location["height"] <= height + 1
    assert isinstance(face["face_probability"], (int, float)) and 0 <= face["face_probability"] <= 1
    assert type(face["rotation_angle"]) is int and -180 <= face["rotation_angle"] <= 180
    for angle in ("yaw", "pitch", "roll"):
        assert type(face[angle]) is float
    assert -90 <= face["yaw"] <= 90 and -90 <= face["pitch"] <= 90 and -180 <= face["roll"] <= 180
    assert face["rotation_angle"] == round(face["roll"])


def test_detect_log_ids_differ_between_requests(api):
    image = b64(photo(SMALL_PORTRAIT))
    assert api.call("detect", image=image)["log_id"] != api.call("detect", image=image)["log_id"]


def test_detect_gives_four_landmarks_inside_the_face_when_face_fields_has_landmark(api):
    answer = api.call("detect", image=b64(photo(PORTRAIT)), face_fields="landmark")
    face = answer["result"][0]
    assert sorted(face) == sorted(DEFAULT_KEYS + ["landmark", "landmark72"])  # §1.3.3: both with landmark
    points = face["landmark"]
    assert len(points) == 4
    assert all(sorted(p) == ["x", "y"] and type(p["x"]) is int and type(p["y"]) is int for p in points)
    box = face["location"]
    for p in points:
        assert box["left"] <= p["x"] <= box["left"] + box["width"]
        assert box["top"] <= p["y"] <= box["top"] + box["height"]
    left_eye, right_eye, nose, mouth = points
    assert left_eye["x"] < right_eye["x"]
    assert max(left_eye["y"], right_eye["y"]) < nose["y"] < mouth["y"]
    assert left_eye["x"] < nose["x"] < right_eye["x"]


def test_detect_ignores_face_fields_it_does_not_measure(api):
    answer = api.call("detect", image=b64(photo(PORTRAIT)), face_fields="beauty,faceshape,glasses,race")
    assert sorted(answer["result"][0]) == sorted(DEFAULT_KEYS)


def test_detect_adds_only_landmarks_among_mixed_face_fields(api):
    answer = api.call("detect", image=b64(photo(PORTRAIT)), face_fields="race, Landmark ,beauty")
    assert sorted(answer["result"][0]) == sorted(DEFAULT_KEYS + ["landmark", "landmark72"])


def test_detect_returns_one_face_by_default(api):
    answer = api.call("detect", image=b64(photo(COUPLE)))
    assert answer["result_num"] == 1 == len(answer["result"])


def test_detect_returns_both_faces_of_a_couple_largest_first(api):
    one = api.call("detect", image=b64(photo(COUPLE)))["result"][0]
    answer = api.call("detect", image=b64(photo(COUPLE)), max_face_num=5)
    assert answer["result_num"] == 2 == len(answer["result"])
    areas = [f["location"]["width"] * f["location"]["height"] for f in answer["result"]]
    assert areas[0] >= areas[1]
    assert answer["result"][0]["location"] == one["location"]
    first, second = (f["location"] for f in answer["result"])
    assert first["left"] + first["width"] <= second["left"] or second["left"] + second["width"] <= first["left"]


@pytest.mark.parametrize("max_face_num", [3, 10])
def test_detect_returns_several_faces_of_a_crowd_at_most_max_face_num(api, max_face_num):
    answer = api.call("detect", image=b64(photo(CROWD)), max_face_num=max_face_num)
    assert 3 <= answer["result_num"] <= max_face_num
    assert answer["result_num"] == len(answer["result"])
    areas = [f["location"]["width"] * f["location"]["height"] for f in answer["result"]]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.parametrize("max_face_num", ["abc", "-1", "2.5", "+3"])
def test_detect_refuses_a_max_face_num_that_is_no_unsigned_integer_with_216100(api, max_face_num):
    assert_error(api.call("detect", image=b64(photo(PORTRAIT)), max_face_num=max_face_num), 216100)


@pytest.mark.parametrize("max_face_num", ["11", "50", "9" * 40])
def test_detect_with_max_face_num_above_10_answers_at_most_10_faces(api, max_face_num):
    """Baidu's limit says what is returned (at most 10 faces), so a larger value counts as 10."""
    answer = api.call("detect", image=b64(photo(CROWD)), max_face_num=max_face_num)
    assert 3 <= answer["result_num"] <= 10 and answer["result_num"] == len(answer["result"])


def test_detect_with_max_face_num_0_answers_the_default_one_face(api):
    assert api.call("detect", image=b64(photo(CROWD)), max_face_num=0)["result_num"] == 1


# --- request forms ---------------------------------------------------------------------


def test_detect_answers_on_the_v1_path(app, token):
    response = app.test_client().post(f"/rest/2.0/face/v1/detect?access_token={token}", data={"image": b64(photo(PORTRAIT))})
    assert response.status_code == 200
    assert response.get_json()["result_num"] == 1


def test_detect_accepts_get_with_the_image_in_the_query_string(app, token):
    # Not api.call(method="GET"): BaiduClient puts access_token in the path and the parameters
    # in query_string, which werkzeug's test client refuses to combine.
    query = {"access_token": token, "image": b64(photo(SMALL_PORTRAIT)), "face_fields": "landmark"}
    response = app.test_client().get("/rest/2.0/face/v2/detect", query_string=query)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["result_num"] == 1
    assert len(answer["result"][0]["landmark"]) == 4


def test_detect_accepts_a_json_body(app, token):
    response = app.test_client().post(
        f"/rest/2.0/face/v2/detect?access_token={token}",
        json={"image": b64(photo(COUPLE)), "max_face_num": 2, "face_fields": "landmark"},
    )
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["result_num"] == 2
    assert all(len(face["landmark"]) == 4 for face in answer["result"])


def test_detect_accepts_images_instead_of_image(api):
    assert api.call("detect", images=b64(photo(PORTRAIT)))["result_num"] == 1


def test_detect_tolerates_a_data_url_header(api):
    plain = api.call("detect", image=b64(photo(PORTRAIT)))
    headed = api.call("detect", image="data:image/jpeg;base64," + b64(photo(PORTRAIT)))
    assert headed["result"] == plain["result"]


def test_detect_tolerates_url_safe_base64_without_padding(api):
    plain = api.call("detect", image=b64(photo(PORTRAIT)))
    urlsafe = base64.urlsafe_b64encode(photo(PORTRAIT)).decode().rstrip("=")
    assert api.call("detect", image=urlsafe)["result"] == plain["result"]


def test_detect_reports_boxes_in_original_pixels_when_the_photo_is_downscaled(api):
    # 1536x1152: the detector sees it at 640 px; the half-size copy at 768 px is also
    # downscaled, so both boxes come from nearly the same detector input.
    original = photo("images/person01/img2.jpg")
    pixels = cv2.imdecode(np.frombuffer(original, np.uint8), cv2.IMREAD_COLOR)
    half = cv2.resize(pixels, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ok, half_jpeg = cv2.imencode(".jpg", half, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    big = api.call("detect", image=b64(original), face_fields="landmark")["result"][0]
    small = api.call("detect", image=b64(half_jpeg.tobytes()), face_fields="landmark")["result"][0]
    tolerance = 0.03 * big["location"]["width"]
    for key in ("left", "top", "width", "height"):
        assert abs(big["location"][key] - 2 * small["location"][key]) <= tolerance, key
    for p, q in zip(big["landmark"], small["landmark"]):
        assert abs(p["x"] - 2 * q["x"]) <= tolerance and abs(p["y"] - 2 * q["y"]) <= tolerance
    assert big["location"]["left"] + big["location"]["width"] > 640  # really beyond the detector's size


def test_detect_finds_a_face_in_a_lossless_png_and_a_bmp(api):
    pixels = cv2.imdecode(np.frombuffer(photo(PORTRAIT), np.uint8), cv2.IMREAD_COLOR)
    for fmt in (".png", ".bmp"):
        ok, data = cv2.imencode(fmt, pixels)
        assert ok
        assert api.call("detect", image=b64(data.tobytes()))["result_num"] == 1, fmt


# --- errors ----------------------------------------------------------------------------


def test_detect_without_an_image_is_216101(api):
    assert_error(api.call("detect", max_face_num=1), 216101)


def test_detect_with_an_empty_image_is_an_error(api):
    answer = api.call("detect", image="")
    assert answer["error_code"] in (216101, 216200)
    assert_error(answer, answer["error_code"])


@pytest.mark.parametrize("text", ["this is not base64!", "@@@@####", "===="])
def test_detect_with_text_that_is_not_base64_is_216200(api, text):
    assert_error(api.call("detect", image=text), 216200)


def test_detect_refuses_a_gif_with_216201(api):
    assert_error(api.call("detect", image=b64(TINY_GIF)), 216201)


def test_detect_refuses_a_webp_named_jpg_with_216201(api):
    data = photo("images/person03/img47.jpg")
    assert data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    assert_error(api.call("detect", image=b64(data)), 216201)


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_detect_refuses_a_truncated_jpeg_with_216201(api, fraction):
    data = photo(PORTRAIT)
    assert_error(api.call("detect", image=b64(data[: int(len(data) * fraction)])), 216201)


@pytest.mark.parametrize("prefix", [b"", b"\xff\xd8\xff"], ids=["plain", "jpeg-magic"])
def test_detect_refuses_random_bytes_with_216201(api, prefix):
    data = prefix + np.random.default_rng(7).bytes(4000)
    assert_error(api.call("detect", image=b64(data)), 216201)


@pytest.mark.parametrize("signature", [b"\x89PNG\r\n\x1a\n", b"BM"], ids=["png", "bmp"])
def test_detect_refuses_a_format_signature_followed_by_garbage_as_a_format_error(api, signature):
    # Not a PNG (no IHDR chunk) nor a BMP (no valid DIB header): the random "dimensions" in
    # the garbage must not be reported as an image size problem.
    data = signature + np.random.default_rng(7).bytes(4000)
    assert_error(api.call("detect", image=b64(data)), 216201)


def test_detect_refuses_a_png_pixel_bomb_with_216202_quickly(api):
    data = png_claiming(30000, 30000)
    started = time.perf_counter()
    answer = api.call("detect", image=b64(data))
    assert time.perf_counter() - started < 1.0
    assert_error(answer, 216202)


def test_detect_refuses_base64_of_2_mb_or_more_with_216202(api):
    data = photo("images/person10/img26.jpg")  # 2.4 MB on disk, 3.3 MB encoded
    assert len(b64(data)) >= 2 * 1024 * 1024
    assert_error(api.call("detect", image=b64(data)), 216202)


def test_detect_accepts_a_photo_whose_base64_is_just_under_2_mb(api):
    data = photo("images/person12/img35.jpg")  # 1.36 MB on disk, 1.8 MB encoded
    assert len(b64(data)) < 2 * 1024 * 1024
    assert api.call("detect", image=b64(data))["result_num"] == 1


def test_detect_refuses_a_body_above_the_request_limit_with_216202(api):
    answer = api.call("detect", image="A" * (22 * 1024 * 1024))
    assert_error(answer, 216202)


def test_detect_in_an_image_without_a_face_is_216402(api):
    across = np.tile(np.linspace(0, 255, 320).astype(np.uint8), (240, 1))
    down = np.tile(np.linspace(0, 255, 240).astype(np.uint8)[:, None], (1, 320))
    image = cv2.merge([across, down, np.full_like(across, 90)])
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    assert_error(api.call("detect", image=b64(data.tobytes())), 216402)


def test_detect_of_two_images_is_216100(api):
    image = b64(photo(SMALL_PORTRAIT))
    assert_error(api.call("detect", image=f"{image},{image}"), 216100)


def test_detect_errors_render_with_http_200_and_json(app, token):
    response = app.test_client().post(f"/rest/2.0/face/v2/detect?access_token={token}", data={"image": b64(TINY_GIF)})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert_error(response.get_json(), 216201)


def test_detect_with_a_non_object_json_body_is_216100(app, token):
    response = app.test_client().post(f"/rest/2.0/face/v2/detect?access_token={token}", json=["not", "an", "object"])
    assert response.status_code == 200
    assert_error(response.get_json(), 216100)


def test_random_garbage_never_makes_detect_answer_500(api):
    rng = np.random.default_rng(11)
    for size in (1, 13, 600):
        answer = api.call("detect", image=b64(rng.bytes(size)))
        assert answer["error_code"] in (216200, 216201, 216202)


def test_a_large_photo_is_decoded_scaled_down_and_described_in_its_own_pixels(pipeline):
    """A photo of 4096 px or more is decoded at 1/2 (or less) by libjpeg; boxes and points
    still come back in the photo's pixels, where a full decode puts them."""
    data = photo("images/person03/img49.jpg")  # 4352 px wide
    full = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(full.shape[:2]) >= 4096
    reference = pipeline.detect(full, 1)[0]
    (face,) = pipeline.detect_photo(data, 1)
    assert face.scale == 2 and max(face.image.shape[:2]) * 2 <= max(full.shape[:2]) + 1
    box = [value * face.scale for value in face.detection.box]
    tolerance = 0.03 * reference.detection.box[2]
    assert all(abs(a - b) <= tolerance for a, b in zip(box, reference.detection.box))
    points = face.landmarks68 * face.scale
    assert np.abs(points - reference.landmarks68).max() <= 2 * tolerance
