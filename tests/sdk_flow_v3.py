"""The v3 face flow that every SDK runs (tests/test_sdks_v3.py): the real Python and Node SDKs
(tests/sdks.py) and the Java, PHP and C# ones replayed from their sources.

A flow is an ordered list of steps ``(method, args, check)``:

- ``method``: the Python SDK 4.16.13's name: detect, search, multiSearch, addUser, updateUser,
  faceDelete, getUser, faceGetlist, getGroupUsers, userCopy, deleteUser, groupAdd, groupDelete,
  getGroupList, match, faceverify, personVerify. A runner maps it to its SDK's own (Node 4.16.16:
  faceMultiSearchV3, getGrouplist; Java/PHP/C#: whatever their sources call it).
- ``args``: the positional arguments as that Python SDK takes them, JSON values only: images are
  base64 text with ``image_type`` "BASE64" (every v3 SDK takes the text, none encodes), options
  are a dict and come last, ``match``/``faceverify`` take one list of dicts. A ``Ref`` anywhere
  in ``args`` stands for a value of an earlier step's answer (a face_token): ``run_flow`` runs
  the steps in batches and puts the value in before the step is sent, so a runner only ever
  sees plain values.
- ``check(answer, answers)``: asserts what the answer means; ``answers`` holds every answer of
  the flow, so a check can compare with earlier ones. ``check_flow`` first asserts v3's
  envelope on every answer.

No two steps send the same request: a signed repeat within the same second is a replay and
gets 110 (service/auth/credentials.py), so repeated calls differ in an argument.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

from bench.forged_images import plain
from service.auth.credentials import AppKeys
from tests.helpers import b64, photo

Check = Callable[[Any, Sequence[Any]], None]
Step = tuple[str, tuple, Check]

# The exact messages of the spec's §4 for the codes the flow expects.
MESSAGES = {
    3: "Unsupported openapi method",
    222202: "pic not has face",
    222207: "match user is not found",
    222208: "the number of image is incorrect",
    222209: "face token not exist",
    223100: "group is not exist",
    223101: "group is already exist",
    223102: "user is already exist",
    223103: "user is not exist",
    223105: "face is already exist",
    223106: "face is not exist",
    223111: "dst group is not exist",
}
FACE_TOKEN = re.compile(r"[0-9a-f]{32}")
UNKNOWN_TOKEN = "0" * 32


@dataclass(frozen=True)
class Ref:
    """The value at ``path`` (keys and list indexes) in the answer of step ``step``."""

    step: int
    path: tuple[Any, ...]


def token_of(step: int, face: Optional[int] = None) -> Ref:
    """The face_token a step answered: its result's (user/add, user/update) or that of face
    ``face`` of its face_list (detect)."""
    return Ref(step, ("result", "face_token") if face is None else ("result", "face_list", face, "face_token"))


def value(answers: Sequence[Any], ref: Ref) -> Any:
    found = answers[ref.step]
    try:
        for key in ref.path:
            found = found[key]
    except (KeyError, IndexError, TypeError):
        raise AssertionError(f"step {ref.step} has no {ref.path}: {answers[ref.step]}") from None
    return found


def refs(args: Any) -> list[Ref]:
    if isinstance(args, Ref):
        return [args]
    if isinstance(args, (list, tuple)):
        return [ref for item in args for ref in refs(item)]
    if isinstance(args, dict):
        return [ref for item in args.values() for ref in refs(item)]
    return []


def resolve(args: Any, answers: Sequence[Any]) -> Any:
    if isinstance(args, Ref):
        return value(answers, args)
    if isinstance(args, (list, tuple)):
        return type(args)(resolve(item, answers) for item in args)
    if isinstance(args, dict):
        return {key: resolve(item, answers) for key, item in args.items()}
    return args


# -- running --------------------------------------------------------------------------------------


def run_flow(sdk: Any, base: str, keys: AppKeys, steps: list[Step], signed: bool = False) -> list[Any]:
    """The answers of ``steps`` sent through ``sdk`` (anything with tests/sdks.py's ``run``): a
    batch ends before the first step that needs an answer of its own batch, and each batch is
    a new client of the same app."""
    for index, (_, args, _) in enumerate(steps):
        assert all(ref.step < index for ref in refs(args)), f"step {index} refers to a later one"
    answers: list[Any] = []
    while len(answers) < len(steps):
        start = end = len(answers)
        while end < len(steps) and (end == start or all(ref.step < start for ref in refs(steps[end][1]))):
            end += 1
        calls = [(method, resolve(args, answers)) for method, args, _ in steps[start:end]]
        batch, _ = sdk.run(base, keys, calls, signed=signed)
        answers += batch
    return answers


def check_flow(
    steps: list[Step], answers: list[Any], skip: object = None, shape: Optional[Callable[[str, Any], None]] = None
) -> None:
    """Check each answer in order: the envelope, ``shape(method, answer)`` (an answer schema),
    the step's check. An answer that ``is skip`` (a call the SDK cannot send) is left out."""
    for index, ((method, _, check), answer) in enumerate(zip(steps, answers, strict=True)):
        if skip is not None and answer is skip:
            continue
        try:
            envelope(answer)
            if shape is not None:
                shape(method, answer)
            check(answer, answers)
        except AssertionError as failure:
            raise AssertionError(f"step {index} ({method}): {failure}") from None
        except (LookupError, TypeError) as failure:  # a missing key or a wrong type: a wrong answer too
            raise AssertionError(f"step {index} ({method}): {failure!r} in {answer}") from None


def envelope(answer: Any) -> None:
    """v3's envelope, errors included: int codes, a log_id a JavaScript number holds exactly."""
    assert isinstance(answer, dict), answer
    assert {"error_code", "error_msg", "log_id", "timestamp", "cached", "result"} <= set(answer), answer
    assert type(answer["error_code"]) is int and isinstance(answer["error_msg"], str), answer
    assert type(answer["log_id"]) is int and 0 <= answer["log_id"] < 2**53, answer
    assert type(answer["timestamp"]) is int and abs(answer["timestamp"] - time.time()) < 600, answer
    assert answer["cached"] == 0, answer
    if answer["error_code"]:
        assert answer["result"] is None, answer
    else:
        assert answer["error_msg"] == "SUCCESS", answer


# -- checks ---------------------------------------------------------------------------------------


def ok(answer: dict) -> dict:
    assert answer["error_code"] == 0, answer
    return answer["result"]


def done(answer: dict, _: Sequence[Any]) -> None:
    assert ok(answer) is None, answer


def error(code: int) -> Check:
    def check(answer: dict, _: Sequence[Any]) -> None:
        assert (answer["error_code"], answer["error_msg"]) == (code, MESSAGES[code]), answer

    return check


def assert_location(location: dict) -> None:
    assert {"left", "top", "width", "height", "rotation"} <= set(location), location
    assert location["width"] > 20 and location["height"] > 20 and -180 <= location["rotation"] <= 180, location


def assert_face_token(token: Any) -> None:
    assert isinstance(token, str) and FACE_TOKEN.fullmatch(token), token


def assert_field(face: dict, field: str) -> None:
    """A requested face_field, with its meaning's ranges."""
    item = face[field]
    if field == "age":
        assert 1 <= item <= 100, item
    elif field == "gender":
        assert item["type"] in ("male", "female") and 0 <= item["probability"] <= 1, item
    elif field == "quality":
        assert 0 <= item["blur"] <= 1 and 0 <= item["illumination"] <= 255 and item["completeness"] in (0, 1), item
    elif field in ("landmark", "landmark72"):
        assert len(item) == (4 if field == "landmark" else 72), item
        assert all(set(point) == {"x", "y"} for point in item), item


ATTRIBUTES = ("age", "gender", "quality", "landmark", "landmark72", "expression", "beauty", "race")


def detected(count: int, *fields: str, same: Optional[Ref] = None) -> Check:
    """``count`` faces with exactly the asked attributes; ``same``: the first face's token is that one."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        assert result["face_num"] == count == len(result["face_list"]), answer
        for face in result["face_list"]:
            assert_face_token(face["face_token"])
            assert_location(face["location"])
            assert 0.5 < face["face_probability"] <= 1 and {"yaw", "pitch", "roll"} <= set(face["angle"]), face
            assert {name for name in ATTRIBUTES if name in face} == set(fields), face.keys()
            for field in fields:
                assert_field(face, field)
        assert len({face["face_token"] for face in result["face_list"]}) == count, answer
        if same is not None:
            assert result["face_list"][0]["face_token"] == value(answers, same), answer

    return check


def registered(same: Optional[Ref] = None, among: Optional[int] = None, other_than: Optional[Ref] = None) -> Check:
    """user/add or user/update stored a face: its token (the token ``same`` is, one of the faces
    detect step ``among`` found, not ``other_than``) and location."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        assert_face_token(result["face_token"])
        assert_location(result["location"])
        if same is not None:
            assert result["face_token"] == value(answers, same), answer
        if among is not None:
            assert result["face_token"] in tokens(answers[among]["result"]["face_list"]), answer
        if other_than is not None:
            assert result["face_token"] != value(answers, other_than), answer

    return check


def tokens(faces: list[dict]) -> list[str]:
    return [face["face_token"] for face in faces]


def face_list(*expected: Ref) -> Check:
    """face/getlist: exactly these registered tokens, each with its UTC creation time."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        faces = ok(answer)["face_list"]
        assert sorted(tokens(faces)) == sorted(value(answers, ref) for ref in expected), answer
        for face in faces:
            created = datetime.strptime(face["ctime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            assert abs(created.timestamp() - time.time()) < 600, face

    return check


def found(user_id: str, group_id: str, user_info: str, searched: Optional[Ref] = None, without: tuple[str, ...] = ()) -> Check:
    """search: that user first, scoring as the same person; every listed user at or above the
    default match_threshold, best first; ``without`` not listed; ``searched``: the face_token."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        users, best = result["user_list"], result["user_list"][0]
        assert (best["user_id"], best["group_id"], best["user_info"]) == (user_id, group_id, user_info), answer
        scores = [user["score"] for user in users]
        assert all(score >= 80 for score in scores) and scores == sorted(scores, reverse=True), answer
        assert not {user["user_id"] for user in users} & set(without), answer
        assert_face_token(result["face_token"])
        if searched is not None:
            assert result["face_token"] == value(answers, searched), answer

    return check


def only_scored(user_id: str, below: float) -> Check:
    """search restricted by user_id with match_threshold 0: that user alone, another person's score."""
    def check(answer: dict, _: Sequence[Any]) -> None:
        users = ok(answer)["user_list"]
        assert [user["user_id"] for user in users] == [user_id] and 0 <= users[0]["score"] < below, answer

    return check


def multi_found(user_id: str, group_id: str, registered_at: int, detected_at: int) -> Check:
    """multi-search on a photo of two people whose larger face was registered (step
    ``registered_at``): both faces, with the tokens detect gave them (step ``detected_at``); the
    larger one found as that user, the other found as nobody."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        faces = result["face_list"]
        assert result["face_num"] == 2 == len(faces), answer
        assert sorted(tokens(faces)) == sorted(tokens(answers[detected_at]["result"]["face_list"])), answer
        for face in faces:
            assert_location(face["location"])
        matched = [face for face in faces if face["user_list"]]
        assert len(matched) == 1 and len(matched[0]["user_list"]) == 1, answer
        user = matched[0]["user_list"][0]
        assert (user["user_id"], user["group_id"]) == (user_id, group_id) and user["score"] >= 80, answer
        assert matched[0]["face_token"] == answers[registered_at]["result"]["face_token"], answer
        assert matched[0]["location"]["width"] == max(face["location"]["width"] for face in faces), answer

    return check


def matched(same_person: bool, first: Optional[Ref] = None) -> Check:
    """match: a score on the right side of 80, a token per image in order (``first``: the first's)."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        assert 0 <= result["score"] <= 100 and (result["score"] >= 80) == same_person, answer
        assert len(result["face_list"]) == 2, answer
        for face in result["face_list"]:
            assert_face_token(face["face_token"])
        if first is not None:
            assert result["face_list"][0]["face_token"] == value(answers, first), answer

    return check


def live_scores(*faces: Ref, fields: tuple[str, ...] = (), thresholds_of: Optional[int] = None) -> Check:
    """faceverify: a face per image with the tokens ``faces`` and the asked ``fields``, the
    overall liveness the highest image's, the three thresholds (constants: those step
    ``thresholds_of`` answered)."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        result = ok(answer)
        assert tokens(result["face_list"]) == [value(answers, ref) for ref in faces], answer
        for face in result["face_list"]:
            assert {name for name in ATTRIBUTES if name in face} == set(fields), face.keys()
            for field in fields:
                assert_field(face, field)
        scores = [face["liveness"]["livemapscore"] for face in result["face_list"]]
        assert all(0 <= score <= 1 for score in scores) and result["face_liveness"] == max(scores), answer
        # (Their order is open: the spec's §3.16 names false-accept rates but shows 0.05, 0.3, 0.9.)
        thresholds = result["thresholds"]
        assert set(thresholds) == {"frr_1e-4", "frr_1e-3", "frr_1e-2"}, answer
        assert all(0 <= cut_off <= 1 for cut_off in thresholds.values()), answer
        if thresholds_of is not None:
            assert thresholds == answers[thresholds_of]["result"]["thresholds"], answer

    return check


def group_ids(*expected: str) -> Check:
    def check(answer: dict, _: Sequence[Any]) -> None:
        listed = ok(answer)["group_id_list"]
        assert sorted(listed) == sorted(expected), answer

    return check


def user_ids(*expected: str, page_of: Optional[tuple[int, int, int]] = None) -> Check:
    """group/getusers: these users; ``page_of`` (step, start, length): exactly that slice of the
    list step ``step`` answered."""
    def check(answer: dict, answers: Sequence[Any]) -> None:
        listed = ok(answer)["user_id_list"]
        if page_of is None:
            assert sorted(listed) == sorted(expected), answer
        else:
            step, start, length = page_of
            assert listed == answers[step]["result"]["user_id_list"][start:start + length], answer

    return check


def user_entries(*expected: tuple[str, str]) -> Check:
    """user/get: (user_info, group_id) per group holding the user."""
    def check(answer: dict, _: Sequence[Any]) -> None:
        entries = [(entry["user_info"], entry["group_id"]) for entry in ok(answer)["user_list"]]
        assert sorted(entries) == sorted(expected), answer

    return check


# -- the flow -------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def image(relative: str) -> str:
    """A photo under ../shared/data/faces-smoke as the base64 text v3 takes."""
    return b64(photo(relative))


def v3_flow() -> list[Step]:
    """Every v3 face method, in an order where each answer is known."""
    alice = [image(f"images/person01/{name}") for name in ("img5.jpg", "img11.jpg", "img6.jpg")]
    bob = [image(f"images/person02/{name}") for name in ("img12.jpg", "img55.jpg")]
    carol = [image(f"images/person05/{name}") for name in ("img62.jpg", "img16.jpg")]
    couple, no_face = image("extras/couple.jpg"), b64(plain(320, 240, ".jpg"))
    steps: list[Step] = []

    def step(method: str, args: tuple, check: Check) -> int:
        steps.append((method, args, check))
        return len(steps) - 1

    # Groups: an explicit empty one.
    step("getGroupList", (), group_ids())
    step("groupAdd", ("empty_group",), done)
    step("getGroupList", ({"start": 0, "length": 10},), group_ids("empty_group"))
    step("getGroupUsers", ("empty_group",), user_ids())
    # detect: the tokens later steps reuse.
    alice_detected = step("detect", (alice[0], "BASE64"), detected(1))
    couple_detected = step(
        "detect", (couple, "BASE64", {"face_field": "age,gender,quality,landmark", "max_face_num": 10}),
        detected(2, "age", "gender", "quality", "landmark", "landmark72"),
    )
    step("detect", (no_face, "BASE64"), error(222202))
    step("detect", (UNKNOWN_TOKEN, "FACE_TOKEN"), error(222209))
    # user/add: a registered face's token is the token detect gave its photo; a group appears.
    alice_first = step(
        "addUser", (alice[0], "BASE64", "staff", "alice", {"user_info": "Alice"}),
        registered(same=token_of(alice_detected, 0)),
    )
    alice_second = step("addUser", (alice[1], "BASE64", "staff", "alice"), registered(other_than=token_of(alice_first)))
    step("addUser", (alice[0], "BASE64", "staff", "alice", {"action_type": "APPEND"}), error(223105))
    step("faceGetlist", ("alice", "staff"), face_list(token_of(alice_first), token_of(alice_second)))
    bob_added = step("addUser", (bob[0], "BASE64", "staff", "bob", {"user_info": "Bob"}), registered())
    step("groupAdd", ("staff",), error(223101))
    step("getGroupList", ({"start": 0, "length": 100},), group_ids("empty_group", "staff"))
    # search: 1:N, restricted to a user, by face_token.
    step("search", (alice[2], "BASE64", "staff"), found("alice", "staff", "Alice"))
    step("search", (carol[0], "BASE64", "staff"), error(222207))
    step("search", (bob[1], "BASE64", "staff,empty_group", {"max_user_num": 2}), found("bob", "staff", "Bob", without=("alice",)))
    step("search", (bob[1], "BASE64", "staff", {"user_id": "alice", "match_threshold": 0}), only_scored("alice", below=80))
    step("search", (alice[2], "BASE64", "staff,nobody_here"), error(223100))
    alice_token = token_of(alice_detected, 0)
    step("search", (alice_token, "FACE_TOKEN", "staff", {"max_user_num": 3}), found("alice", "staff", "Alice", searched=alice_token))
    step("search", (alice_token, "FACE_TOKEN", "empty_group"), error(222207))
    step("search", (alice_token, "FACE_TOKEN", "staff", {"user_id": "carol"}), error(223103))
    step("detect", (alice_token, "FACE_TOKEN"), detected(1, same=alice_token))
    # match
    step("match", ([{"image": alice[0], "image_type": "BASE64"}, {"image": alice[1], "image_type": "BASE64"}],), matched(True, first=alice_token))
    step("match", ([{"image": alice_token, "image_type": "FACE_TOKEN"}, {"image": bob[0], "image_type": "BASE64"}],), matched(False, first=alice_token))
    step("match", ([{"image": alice[0], "image_type": "BASE64"}],), error(222208))
    # multi-search: the couple's larger face registered, both faces searched.
    tall_added = step("addUser", (couple, "BASE64", "couples", "tall", {"user_info": "the larger face"}), registered(among=couple_detected))
    step("multiSearch", (couple, "BASE64", "couples", {"max_face_num": 2}), multi_found("tall", "couples", tall_added, couple_detected))
    step("multiSearch", (carol[0], "BASE64", "couples"), error(222207))
    # faceverify, person/verify
    # (one image, as the first v3 SDKs send it, and several)
    verified = step("faceverify", ([{"image": alice[0], "image_type": "BASE64", "face_field": "age"}],), live_scores(alice_token, fields=("age",)))
    step(
        "faceverify", ([{"image": alice[1], "image_type": "BASE64"}, {"image": bob[0], "image_type": "BASE64"}],),
        live_scores(token_of(alice_second), token_of(bob_added), thresholds_of=verified),
    )
    step("personVerify", (alice[0], "BASE64", "110101199003071234", "张三"), error(3))
    # user/update: UPDATE needs the user, REPLACE registers; both replace the faces.
    step("updateUser", (carol[0], "BASE64", "staff", "carol"), error(223103))
    carol_added = step("updateUser", (carol[0], "BASE64", "staff", "carol", {"action_type": "REPLACE", "user_info": "Carol"}), registered())
    bob_updated = step("updateUser", (bob[1], "BASE64", "staff", "bob", {"user_info": "Bob again"}), registered(other_than=token_of(bob_added)))
    step("faceGetlist", ("bob", "staff"), face_list(token_of(bob_updated)))
    step("getUser", ("bob", "staff"), user_entries(("Bob again", "staff")))
    step("search", (carol[1], "BASE64", "staff"), found("carol", "staff", "Carol"))
    # group/getusers paging
    everyone = step("getGroupUsers", ("staff",), user_ids("alice", "bob", "carol"))
    step("getGroupUsers", ("staff", {"start": 1, "length": 1}), user_ids(page_of=(everyone, 1, 1)))
    step("getGroupUsers", ("staff", {"start": 2, "length": 100}), user_ids(page_of=(everyone, 2, 100)))
    # face/delete, user/copy (face tokens travel with the user)
    step("faceDelete", ("alice", "staff", token_of(alice_first)), done)
    step("faceDelete", ("alice", "staff", UNKNOWN_TOKEN), error(223106))
    step("userCopy", ("alice", {"src_group_id": "staff", "dst_group_id": "no_such_group"}), error(223111))
    step("groupAdd", ("vip",), done)
    step("userCopy", ("alice", {"src_group_id": "staff", "dst_group_id": "vip"}), done)
    step("userCopy", ("alice", {"src_group_id": "vip", "dst_group_id": "staff"}), error(223102))
    step("faceGetlist", ("alice", "vip"), face_list(token_of(alice_second)))
    step("getUser", ("alice", "@ALL"), user_entries(("Alice", "staff"), ("Alice", "vip")))
    step("search", (alice[2], "BASE64", "vip", {"quality_control": "LOW", "liveness_control": "LOW"}), found("alice", "vip", "Alice"))
    # user/delete; a user's last face deleted, the user is gone from the group too
    step("deleteUser", ("staff", "bob"), done)
    step("getUser", ("bob", "@ALL"), error(223103))
    step("deleteUser", ("@ALL", "bob"), error(223103))
    step("faceDelete", ("carol", "staff", token_of(carol_added)), done)
    step("getGroupUsers", ("staff", {"length": 10}), user_ids("alice"))
    # group/delete: gone for every later use, the other groups untouched
    step("groupDelete", ("vip",), done)
    step("getGroupUsers", ("vip",), error(223100))
    step("search", (alice_token, "FACE_TOKEN", "vip", {"max_user_num": 1}), error(223100))
    step("groupDelete", ("never_made",), error(223100))
    step("getGroupList", ({"length": 1000},), group_ids("couples", "empty_group", "staff"))
    step("getUser", ("alice", "staff"), user_entries(("Alice", "staff")))
    return steps
