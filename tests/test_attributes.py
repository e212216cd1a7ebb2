"""Face attributes (detect's face_fields, spec §1.3) and liveness (match's image_liveness,
identify/verify's ext_fields, §1.4-§1.6): the pure geometry on exact cases, the heads on real
photos, and the fields through HTTP."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from tests.helpers import LFW, b64, photo
from workers.align import ARCFACE_TEMPLATE
from workers.attributes import Face, Smile, expression_of, smile_probability
from workers.crops import DLIB_TEMPLATE, dlib_chip, fit_region
from workers.heads import POSE_BIN_DEGREES, Heads, pose_from_bins
from service.api.landmarks import baidu_landmark72
from workers.landmarks import dlib_five, eye_line_roll, mouth_opening
from workers.quality import blur_effect, completeness, illumination

PORTRAIT = "images/person01/img11.jpg"
SMALL_PORTRAIT = "images/person05/img62.jpg"
FRONTAL = ("images/person01/img10.jpg", "images/person03/img51.jpg", "images/person11/img30.jpg")
TURNED = ("images/person05/img61.jpg", "images/person05/img16.jpg", "images/person12/img34.jpg")
DEFAULT_KEYS = {"location", "face_probability", "rotation_angle", "yaw", "pitch", "roll"}
FIELD_KEYS = {
    "age": {"age"},
    "gender": {"gender", "gender_probability"},
    "expression": {"expression", "expression_probability"},
    "landmark": {"landmark", "landmark72"},
    "qualities": {"qualities"},
    "quality": {"qualities"},
}
ALL_FIELDS = "age,beauty,expression,faceshape,gender,glasses,landmark,race,qualities"


@lru_cache(maxsize=None)
def pixels(relative: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(photo(relative), np.uint8), cv2.IMREAD_COLOR)


def largest(pipeline, image: np.ndarray) -> Face:
    faces = pipeline.detect(image, 1)
    assert faces, "no face found"
    return faces[0]


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned counter-clockwise about its centre, on a canvas that keeps every pixel."""
    height, width = image.shape[:2]
    side = int(np.hypot(height, width))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    matrix[:, 2] += [(side - width) / 2, (side - height) / 2]
    return cv2.warpAffine(image, matrix, (side, side))


# --- pure geometry and decoding ----------------------------------------------------------


def test_fit_region_keeps_a_scaled_box_centred_when_the_photo_has_room():
    assert fit_region((40, 50, 20, 30), 1.5, 200, 200) == (35, 42, 30, 45)


def test_fit_region_moves_a_box_at_the_border_inside_without_cutting_it():
    left, top, width, height = fit_region((-10, 170, 40, 40), 1.0, 200, 200)
    assert (width, height) == (40, 40)
    assert left == 0 and top + height <= 199


def test_fit_region_shrinks_a_scale_the_photo_cannot_hold():
    left, top, width, height = fit_region((20, 20, 60, 60), 2.7, 100, 100)
    assert (left, top) == (0, 0) and width == height == 99


def test_dlib_chip_puts_the_five_points_on_dlibs_template():
    size = 64
    template = (0.2 + DLIB_TEMPLATE) / 1.4 * size
    points = template * 3 + [40, 25]  # the same face three times larger, elsewhere
    image = np.zeros((400, 400, 3), np.uint8)
    x, y = np.round(points[4]).astype(int)
    image[y - 3 : y + 4, x - 3 : x + 4] = 255
    chip = dlib_chip(image, points, size)
    row, column = np.unravel_index(np.argmax(chip[..., 0]), chip.shape[:2])
    assert abs(column - template[4, 0]) <= 1.5 and abs(row - template[4, 1]) <= 1.5


def index_points() -> np.ndarray:
    """68 points whose x is their index: every derived point says where it came from."""
    return np.stack([np.arange(68.0), np.zeros(68)], axis=1)


def test_landmark72_takes_chin_eye_centres_nose_tip_and_mouth_corners_from_the_68_points():
    points = baidu_landmark72(index_points())[:, 0]
    assert points.shape == (72,)
    assert points[0] == 0 and points[6] == 8 and points[12] == 16  # jaw ends and chin
    assert points[21] == pytest.approx(np.mean(range(36, 42)))  # image-left eye centre
    assert points[38] == pytest.approx(np.mean(range(42, 48)))  # image-right eye centre
    assert points[57] == 30  # nose tip
    assert (points[58], points[62]) == (48, 54)  # mouth corners
    assert points[13] == 36 and points[30] == 42  # each eye ring starts at its image-left corner
    assert points[22] == 17 and points[39] == 22  # each eyebrow ring at its image-left end


def test_landmark72_of_a_translated_face_is_translated():
    points = np.random.default_rng(3).uniform(0, 100, (68, 2))
    np.testing.assert_allclose(baidu_landmark72(points + [7, -5]), baidu_landmark72(points) + [7, -5])


def test_dlib_five_are_eye_corners_and_subnasale_in_dlibs_order():
    np.testing.assert_array_equal(dlib_five(index_points())[:, 0], [45, 42, 36, 39, 33])


def test_eye_line_roll_is_the_clockwise_angle_of_the_line_between_the_eye_centres():
    points = np.zeros((68, 2))
    points[36:42] = (10, 10)
    points[42:48] = (20, 20)  # the image-right eye lower: the face turned clockwise
    assert eye_line_roll(points) == pytest.approx(45)
    points[42:48] = (20, 0)
    assert eye_line_roll(points) == pytest.approx(-45)


def test_mouth_opening_is_the_inner_lip_gap_over_the_mouth_width():
    points = np.zeros((68, 2))
    points[48], points[54] = (0, 0), (40, 0)
    points[62], points[66] = (20, -2), (20, 8)
    assert mouth_opening(points) == pytest.approx(0.25)


def test_blur_effect_is_higher_for_a_blurred_copy_and_within_0_and_1():
    sharp = np.random.default_rng(5).integers(0, 256, (112, 112)).astype(np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert 0 <= blur_effect(sharp) < blur_effect(soft) - 0.2 < blur_effect(soft) <= 1


def test_blur_effect_of_a_flat_image_is_1():
    assert blur_effect(np.full((50, 50), 128, np.uint8)) == 1.0


def test_illumination_is_the_mean_luma_of_the_box_inside_the_photo():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, 50:] = 200
    assert illumination(image, (50, 10, 30, 30)) == 200
    assert illumination(image, (40, 10, 20, 20)) == 100
    assert illumination(image, (90, 90, 40, 40)) == 200  # the part outside is ignored
    assert illumination(image, (150, 150, 10, 10)) == 0


def test_completeness_is_0_for_a_face_in_the_photo_and_1_for_a_face_cut_by_its_border():
    points = ARCFACE_TEMPLATE * 2 + [100, 100]  # a 224-pixel face at (100, 100)
    assert completeness(points, 500, 500) == 0
    assert completeness(points - [150, 0], 500, 500) == 1  # its left part beyond x = 0
    assert completeness(points, 500, 280) == 1  # its chin below the bottom


def one_hot(degrees: float) -> np.ndarray:
    scores = np.full(66, -50.0)
    scores[int(np.argmin(np.abs(POSE_BIN_DEGREES - degrees)))] = 50.0
    return scores


def test_pose_from_bins_turns_the_heads_yaw_and_pitch_into_baidus_signs():
    yaw, pitch, roll = pose_from_bins(one_hot(30), one_hot(-15), one_hot(9))
    assert (yaw, pitch, roll) == pytest.approx((-30, 15, 9))


def test_smile_probability_rises_with_happiness_and_crosses_half_near_0_91():
    values = [smile_probability(p) for p in (0.01, 0.5, 0.9, 0.92, 0.999)]
    assert values == sorted(values)
    assert values[3] > 0.5 > values[2]


@pytest.mark.parametrize(
    "happy, opening, kind",
    [(0.05, 0.3, Smile.NONE), (0.999, 0.05, Smile.SMILE), (0.999, 0.3, Smile.LAUGH)],
)
def test_expression_is_none_smile_or_laugh_by_happiness_and_mouth_opening(happy, opening, kind):
    expression = expression_of(happy, opening)
    assert expression.kind == kind
    assert 0.5 <= expression.probability <= 1


# --- the heads on real photos ------------------------------------------------------------


class Recorder:
    """A session that notes its head's name and runs the real one."""

    def __init__(self, name: str, heads: Heads, opened: list[str]) -> None:
        opened.append(name)
        self.name, self.heads = name, heads

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.heads.run(self.name, batch)


@pytest.fixture
def opened() -> list[str]:
    return []


@pytest.fixture
def recording_face(pipeline, opened) -> Face:
    heads = Heads(lambda name: Recorder(name, pipeline.heads, opened))
    detection = pipeline.detector.detect(pixels(SMALL_PORTRAIT))[0]
    return Face(detection, pixels(SMALL_PORTRAIT), heads)


def test_a_face_runs_no_head_until_an_attribute_is_read(recording_face, opened):
    recording_face.detection
    assert opened == []


def test_age_opens_only_the_landmark_and_age_heads_and_runs_them_once(recording_face, opened):
    first = recording_face.age
    assert recording_face.age == first
    assert opened == ["fr_landmark", "dlib_age"]


def test_pose_opens_only_the_pose_and_landmark_heads(recording_face, opened):
    recording_face.pose
    assert sorted(opened) == ["fr_landmark", "fr_pose"]


def test_quality_opens_no_head(recording_face, opened):
    recording_face.quality
    assert opened == []


def test_every_landmark72_point_lies_in_the_face_box_in_anatomical_order(pipeline):
    for relative in (PORTRAIT, *FRONTAL):
        face = largest(pipeline, pixels(relative))
        points = baidu_landmark72(face.landmarks68)
        x, y, w, h = face.detection.box
        # The 68-point head's chin may sit a little under the detector's box (<5% on faces-smoke).
        margin_x, margin_y = 0.1 * w, 0.1 * h
        assert np.all((points[:, 0] >= x - margin_x) & (points[:, 0] <= x + w + margin_x)), relative
        assert np.all((points[:, 1] >= y - margin_y) & (points[:, 1] <= y + h + margin_y)), relative
        left_eye, right_eye, tip, chin = points[21], points[38], points[57], points[6]
        upper_lip, lower_lip = points[60], points[64]
        assert left_eye[0] < tip[0] < right_eye[0], relative
        assert points[22:30, 1].mean() < left_eye[1] and points[39:47, 1].mean() < right_eye[1], relative
        assert max(left_eye[1], right_eye[1]) < tip[1] < upper_lip[1] < lower_lip[1] < chin[1], relative
        assert points[58, 0] < points[62, 0] and points[0, 0] < points[12, 0], relative
        assert chin[1] == pytest.approx(points[:13, 1].max(), abs=0.05 * h), relative


@pytest.mark.parametrize("relative", FRONTAL)
def test_pose_of_a_frontal_portrait_is_near_zero(pipeline, relative):
    pose = largest(pipeline, pixels(relative)).pose
    # Both pose estimates read ~10 degrees of pitch on faces-smoke's portraits (README).
    assert abs(pose.yaw) < 8 and abs(pose.roll) < 8 and abs(pose.pitch) < 20


@pytest.mark.parametrize("relative", TURNED)
def test_yaw_and_roll_change_sign_on_the_mirrored_photo(pipeline, relative):
    pose = largest(pipeline, pixels(relative)).pose
    mirrored = largest(pipeline, cv2.flip(pixels(relative), 1)).pose
    assert abs(pose.yaw) > 5 and np.sign(mirrored.yaw) == -np.sign(pose.yaw)
    assert abs(pose.yaw + mirrored.yaw) < 8 and abs(pose.roll + mirrored.roll) < 8
    assert abs(pose.pitch - mirrored.pitch) < 8


@pytest.mark.parametrize("degrees", [-20, 20])
def test_roll_follows_a_photo_turned_in_its_plane(pipeline, degrees):
    image = pixels(FRONTAL[0])
    before = largest(pipeline, image).pose.roll
    after = largest(pipeline, rotated(image, degrees)).pose.roll
    assert after - before == pytest.approx(-degrees, abs=6)  # counter-clockwise turn: roll falls


@pytest.mark.parametrize(
    "label, relatives",
    [
        ("female", ("images/person01/img1.jpg", "images/person01/img10.jpg")),
        ("male", ("images/person04/img14.jpg", "images/person04/img57.jpg")),
    ],
)
def test_gender_agrees_with_itself_on_two_photos_of_one_person(pipeline, label, relatives):
    genders = [largest(pipeline, pixels(r)).gender for r in relatives]
    assert [g.label for g in genders] == [label, label]
    assert all(g.probability > 0.8 for g in genders)


@pytest.mark.parametrize("person, label", [("Colin_Powell", "male"), ("Serena_Williams", "female")])
def test_gender_agrees_with_itself_on_two_lfw_photos_of_one_person(pipeline, person, label):
    paths = [LFW / "images" / person / f"{person}_{n:04d}.jpg" for n in (1, 2)]
    assert [largest(pipeline, cv2.imread(str(p))).gender.label for p in paths] == [label, label]


def test_age_ranks_a_man_in_his_fifties_above_a_woman_in_her_twenties(pipeline):
    older = largest(pipeline, pixels("images/person13/img39.jpg")).age
    younger = largest(pipeline, pixels("images/person03/img8.jpg")).age
    assert 15 < younger < older - 10 < 80


def test_expression_tells_a_laugh_a_smile_and_a_straight_face_apart(pipeline):
    kinds = [largest(pipeline, pixels(r)).expression.kind for r in (
        "images/person03/img50.jpg", "images/person01/img1.jpg", "images/person05/img62.jpg")]
    assert kinds == [Smile.LAUGH, Smile.SMILE, Smile.NONE]


def test_blur_rises_and_illumination_falls_on_blurred_and_darkened_copies(pipeline):
    image = pixels(PORTRAIT)
    plain = largest(pipeline, image).quality
    blurred = largest(pipeline, cv2.GaussianBlur(image, (0, 0), 4)).quality
    darker = largest(pipeline, (image * 0.5).astype(np.uint8)).quality
    assert blurred.blur > plain.blur + 0.1
    assert darker.illumination == pytest.approx(plain.illumination / 2, abs=3)


def test_completeness_is_1_when_the_photo_cuts_the_face(pipeline):
    image = pixels(PORTRAIT)
    whole = largest(pipeline, image)
    x, _, w, _ = whole.detection.box
    cut = largest(pipeline, np.ascontiguousarray(image[:, int(x + 0.3 * w) :]))
    assert (whole.quality.completeness, cut.quality.completeness) == (0, 1)


# --- through HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(FIELD_KEYS))
def test_detect_adds_a_fields_keys_exactly_when_it_is_asked_for(api, field):
    face = api.call("detect", image=b64(photo(SMALL_PORTRAIT)), face_fields=field)["result"][0]
    assert set(face) == DEFAULT_KEYS | FIELD_KEYS[field]


def test_detect_answers_every_measured_field_with_the_spec_types_and_ranges(api):
    answer = api.call("detect", image=b64(photo(PORTRAIT)), face_fields=ALL_FIELDS, max_face_num=2)
    face = answer["result"][0]
    assert set(face) == DEFAULT_KEYS | {k for keys in FIELD_KEYS.values() for k in keys}
    assert type(face["age"]) is float and 0 < face["age"] < 100
    assert face["gender"] in ("male", "female")
    assert type(face["gender_probability"]) is float and 0.5 <= face["gender_probability"] <= 1
    assert face["expression"] in (0, 1, 2) and type(face["expression"]) is int
    assert type(face["expression_probability"]) is float and 0.5 <= face["expression_probability"] <= 1
    assert len(face["landmark72"]) == 72
    assert all(sorted(p) == ["x", "y"] and type(p["x"]) is int and type(p["y"]) is int and min(p.values()) >= 0
               for p in face["landmark72"])
    quality = face["qualities"]
    assert set(quality) == {"blur", "illumination", "completeness"}  # no model for occlusion or type
    assert type(quality["blur"]) is float and 0 <= quality["blur"] <= 1
    assert type(quality["illumination"]) is int and 0 <= quality["illumination"] <= 255
    assert quality["completeness"] in (0, 1) and type(quality["completeness"]) is int


def test_detect_describes_each_face_of_a_couple_separately(api):
    answer = api.call("detect", image=b64(photo("extras/couple.jpg")), face_fields="gender,landmark", max_face_num=2)
    first, second = answer["result"]
    assert first["landmark72"] != second["landmark72"]
    for face in answer["result"]:
        box = face["location"]
        nose = face["landmark72"][57]
        assert box["left"] <= nose["x"] <= box["left"] + box["width"]


def register(api, uid: str, relative: str) -> None:
    answer = api.call("faceset/user/add", uid=uid, user_info="info", group_id="g", image=b64(photo(relative)))
    assert "error_code" not in answer, answer


def liveness_scores(answer: dict) -> list[str]:
    (info,) = answer["ext_info"]
    assert set(info) == {"faceliveness"} and isinstance(info["faceliveness"], str)
    return info["faceliveness"].split(",")


def test_identify_and_verify_score_liveness_only_when_ext_fields_asks(api):
    register(api, "u1", "images/person05/img62.jpg")
    probe = b64(photo("images/person05/img16.jpg"))
    for path, options in (("identify", {}), ("verify", {"uid": "u1"})):
        plain = api.call(path, group_id="g", image=probe, **options)
        live = api.call(path, group_id="g", image=probe, ext_fields="faceliveness", **options)
        assert "ext_info" not in plain, path
        (score,) = liveness_scores(live)
        assert 0 <= float(score) <= 1 and score != "0", path
        assert live["result"] == plain["result"], path


def test_match_scores_liveness_of_the_images_image_liveness_names(api):
    images = ",".join(b64(photo(r)) for r in ("images/person05/img62.jpg", "images/person05/img16.jpg"))
    assert "ext_info" not in api.call("match", images=images)
    second = liveness_scores(api.call("match", images=images, image_liveness=",faceliveness"))
    both = liveness_scores(api.call("match", images=images, image_liveness="faceliveness,faceliveness"))
    first = liveness_scores(api.call("match", images=images, image_liveness="faceliveness,"))
    assert second[0] == "0" and first[1] == "0"  # §1.4.3: "0,0.9999" = first image not checked
    assert both == [first[0], second[1]]
    assert all(0 <= float(s) <= 1 for s in both)
