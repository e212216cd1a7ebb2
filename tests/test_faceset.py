"""faceset/user/* and faceset/group/* (spec §1.7-§1.14, SDK §6.3.5-§6.3.12): answers, errors,
paging, and a library that stays consistent (Redis records and indexes) after every write."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from service.errors import ALREADY_ADDED
from service.library.check import check_library
from tests.helpers import BaiduClient, assert_error, assert_ok, b64, grey_png, photo

# Small photos (20-60 kB) of five different people: registering one costs ~50 ms.
PERSON05 = "images/person05/img62.jpg"
PERSON02 = "images/person02/img12.jpg"
PERSON03 = "images/person03/img51.jpg"
PERSON09 = "images/person09/img25.jpg"
PERSON01 = "images/person01/img5.jpg"
PERSON05_OTHER = "images/person05/img16.jpg"
PERSON02_OTHER = "images/person02/img55.jpg"


@lru_cache(maxsize=None)
def image(relative: str) -> str:
    return b64(photo(relative))


def assert_consistent(services) -> None:
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []


def add(api, uid: str, group: str, relative: str = PERSON05, info: str = "info", **extra) -> dict:
    return api.call("faceset/user/add", uid=uid, user_info=info, group_id=group, image=image(relative), **extra)


def groups_of(api, uid: str) -> dict[str, str]:
    """group -> user_info of uid, from user/get ({} when unknown)."""
    answer = api.call("faceset/user/get", uid=uid)
    if answer.get("error_code") == 216611:
        return {}
    return {entry["group_id"]: entry["user_info"] for entry in answer["result"]}


def group_list(api, **paging) -> list[str]:
    answer = api.call("faceset/group/getlist", **paging)
    assert answer["result_num"] == len(answer["result"]), answer
    return answer["result"]


def user_list(api, group: str, **paging) -> list[dict]:
    answer = api.call("faceset/group/getusers", group_id=group, **paging)
    assert answer["result_num"] == len(answer["result"]), answer
    return answer["result"]


@pytest.fixture
def app_id(services, token) -> str:
    return services.auth.app_for_token(token)


@pytest.fixture
def faces_in(services, app_id):
    """How many faces the process's index holds for (group): what identify searches."""
    return lambda group: services.indexes.registry.size(app_id, group)


# -- user/add -----------------------------------------------------------------------------------


def test_user_add_answers_only_a_log_id_and_user_get_shows_the_user(api, services, faces_in):
    assert_ok(add(api, "u1", "g1", info="Test User"))
    answer = api.call("faceset/user/get", uid="u1")
    assert answer == {"log_id": answer["log_id"], "result_num": 1, "result": [{"uid": "u1", "user_info": "Test User", "group_id": "g1"}]}
    assert group_list(api) == ["g1"]
    assert user_list(api, "g1") == [{"uid": "u1", "user_info": "Test User"}]
    assert faces_in("g1") == 1
    assert_consistent(services)


def test_every_answer_gets_its_own_log_id(api):
    log_ids = {add(api, "u1", "g1")["log_id"], add(api, "u1", "g1")["log_id"], api.call("faceset/group/getlist")["log_id"]}
    assert len(log_ids) == 3


def test_user_add_accepts_the_image_under_images_as_chapter_1_names_it(api, services):
    assert_ok(api.call("faceset/user/add", uid="u1", user_info="x", group_id="g1", images=image(PERSON05)))
    assert groups_of(api, "u1") == {"g1": "x"}
    assert_consistent(services)


def test_user_add_with_several_groups_registers_the_user_in_each(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2,g3", info="multi"))
    assert groups_of(api, "u1") == {"g1": "multi", "g2": "multi", "g3": "multi"}
    assert group_list(api) == ["g1", "g2", "g3"]
    assert [faces_in(g) for g in ("g1", "g2", "g3")] == [1, 1, 1]
    assert_consistent(services)


def test_user_add_of_a_known_uid_to_a_new_group_keeps_its_other_groups(api, services):
    assert_ok(add(api, "u1", "g1", info="first"))
    assert_ok(add(api, "u1", "g2", info="second"))
    assert groups_of(api, "u1") == {"g1": "first", "g2": "second"}
    assert_consistent(services)


def test_same_photo_again_for_the_same_uid_and_group_is_refused_as_image_existed(api, services, faces_in):
    assert_ok(add(api, "u1", "g1"))
    assert_error(add(api, "u1", "g1"), 216616)
    assert_error(add(api, "u1", "g1", action_type="append"), 216616)
    assert faces_in("g1") == 1
    assert_consistent(services)


def test_same_photo_for_another_uid_or_another_group_is_accepted(api, services, faces_in):
    assert_ok(add(api, "u1", "g1"))
    assert_ok(add(api, "u2", "g1"))
    assert_ok(add(api, "u1", "g2"))
    assert (faces_in("g1"), faces_in("g2")) == (2, 1)
    assert_consistent(services)


def test_append_adds_a_second_photo_to_the_user(api, services, faces_in):
    assert_ok(add(api, "u1", "g1", PERSON05))
    assert_ok(add(api, "u1", "g1", PERSON05_OTHER, action_type="append"))
    assert faces_in("g1") == 2
    assert user_list(api, "g1") == [{"uid": "u1", "user_info": "info"}]
    assert_consistent(services)


def test_replace_swaps_all_the_users_photos_in_the_whole_library(api, services, faces_in):
    """§1.7.2: replace "replaces all photos of the uid in the library" with the new one, in the
    named groups and in every other group the uid is in."""
    assert_ok(add(api, "u1", "g1,g2", PERSON05))
    assert_ok(add(api, "u1", "g1", PERSON05_OTHER))
    assert_ok(add(api, "u1", "g3", PERSON05_OTHER))
    assert (faces_in("g1"), faces_in("g2"), faces_in("g3")) == (2, 1, 1)
    assert_ok(add(api, "u1", "g1", PERSON05, action_type="replace"))  # an existing photo: no 216616
    assert (faces_in("g1"), faces_in("g2"), faces_in("g3")) == (1, 1, 1)
    assert_ok(add(api, "u1", "g1", PERSON02, action_type="replace"))
    assert (faces_in("g1"), faces_in("g2"), faces_in("g3")) == (1, 1, 1)
    for group in ("g2", "g3"):  # the other groups now hold the new photo, not the old ones
        assert api.call("verify", uid="u1", group_id=group, image=image(PERSON02))["result"][0] > 99
    assert set(groups_of(api, "u1")) == {"g1", "g2", "g3"}
    assert_consistent(services)


def test_replace_registers_an_unknown_uid(api, services):
    assert_ok(add(api, "u1", "g1", action_type="replace"))
    assert groups_of(api, "u1") == {"g1": "info"}
    assert_consistent(services)


def test_user_info_may_be_empty(api, services):
    assert_ok(add(api, "u1", "g1", info=""))
    assert groups_of(api, "u1") == {"g1": ""}
    assert user_list(api, "g1") == [{"uid": "u1", "user_info": ""}]
    assert_consistent(services)


def test_user_info_of_256_bytes_is_kept_whole(api):
    info = "\u4e2d" * 85 + "a"  # 85 three-byte characters and one byte: 256 bytes
    assert len(info.encode()) == 256
    assert_ok(add(api, "u1", "g1", info=info))
    assert groups_of(api, "u1") == {"g1": info}


@pytest.mark.parametrize("info", ["a" * 257, "\u4e2d" * 86], ids=["257-ascii", "258-bytes-in-86-chars"])
def test_user_info_over_256_bytes_is_invalid(api, services, info):
    assert_error(add(api, "u1", "g1", info=info), 216100)
    assert group_list(api) == []
    assert_consistent(services)


def test_user_add_without_user_info_lacks_a_parameter(api):
    assert_error(api.call("faceset/user/add", uid="u1", group_id="g1", image=image(PERSON05)), 216101)
    assert group_list(api) == []


@pytest.mark.parametrize("missing", ["uid", "group_id", "image"])
def test_user_add_without_a_required_parameter_lacks_a_parameter(api, missing):
    params = {"uid": "u1", "user_info": "x", "group_id": "g1", "image": image(PERSON05)}
    del params[missing]
    assert_error(api.call("faceset/user/add", **params), 216101)
    assert group_list(api) == []


@pytest.mark.parametrize("uid", ["bad-uid", "a b", "user@x", "\u4e2d\u6587", "u" * 129], ids=["dash", "space", "at", "cjk", "129-bytes"])
def test_user_add_with_an_invalid_uid_answers_invalid_userid(api, services, uid):
    assert_error(add(api, uid, "g1"), 216111)
    assert group_list(api) == []
    assert_consistent(services)


def test_uid_of_128_bytes_is_accepted(api, services):
    uid = "U_9" * 42 + "xy"
    assert len(uid) == 128
    assert_ok(add(api, uid, "g1"))
    assert user_list(api, "g1") == [{"uid": uid, "user_info": "info"}]
    assert_consistent(services)


def test_an_id_with_a_trailing_newline_is_refused_not_a_second_user(api, services):
    """A regex "$" matches before a final newline: "u1\n" must not become a user beside "u1"."""
    assert_ok(add(api, "u1", "g1", PERSON05))
    assert_error(add(api, "u1\n", "g1", PERSON02), 216111)
    assert_error(add(api, "u2", "g1\n", PERSON02), 216100)
    assert_error(api.call("faceset/user/get", uid="u1\n"), 216111)
    assert user_list(api, "g1") == [{"uid": "u1", "user_info": "info"}]
    assert_consistent(services)


@pytest.mark.parametrize("group", ["g-1", "g 1", "g1,", "g1,bad.group", "g" * 129], ids=["dash", "space", "empty-item", "one-bad-item", "129-bytes"])
def test_user_add_with_an_invalid_group_id_is_an_invalid_param(api, services, group):
    assert_error(add(api, "u1", group), 216100)
    assert group_list(api) == []
    assert_consistent(services)


def test_group_id_of_48_bytes_is_accepted(api):
    group = "G_" * 24
    assert_ok(add(api, "u1", group))
    assert group_list(api) == [group]


def test_user_add_with_an_unknown_action_type_is_an_invalid_param(api, services):
    assert_error(add(api, "u1", "g1", action_type="merge"), 216100)
    assert group_list(api) == []
    assert_consistent(services)


def test_user_add_of_a_photo_without_a_face_stores_nothing(api, services):
    assert_error(api.call("faceset/user/add", uid="u1", user_info="x", group_id="g1", image=b64(grey_png())), 216402)
    assert group_list(api) == []
    assert_consistent(services)


# -- user/update --------------------------------------------------------------------------------


def test_update_into_a_group_the_user_is_not_in_is_user_not_exist_and_changes_nothing(api, services):
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/user/update", uid="u1", group_id="g1,g2", image=image(PERSON02)), 216612)
    assert groups_of(api, "u1") == {"g1": "info"}
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []


def test_user_update_replaces_the_photos_in_the_given_group(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2", PERSON05))
    assert_ok(add(api, "u1", "g1", PERSON05_OTHER))
    assert_ok(api.call("faceset/user/update", uid="u1", group_id="g1", user_info="info", image=image(PERSON02)))
    assert (faces_in("g1"), faces_in("g2")) == (1, 1)
    assert_consistent(services)


def test_user_update_without_group_id_replaces_the_photos_in_all_the_users_groups(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2", PERSON05))
    assert_ok(add(api, "u2", "g1", PERSON03))
    both = f"{image(PERSON02)},{image(PERSON02_OTHER)}"
    assert_ok(api.call("faceset/user/update", uid="u1", images=both))
    assert (faces_in("g1"), faces_in("g2")) == (3, 2)  # u2's face stays in g1
    assert_ok(add(api, "u1", "g1", PERSON05))  # the old photo is gone: no "image existed"
    assert_consistent(services)


def test_user_update_keeps_user_info_when_none_is_sent(api, services):
    assert_ok(add(api, "u1", "g1", info="kept"))
    assert_ok(api.call("faceset/user/update", uid="u1", group_id="g1", image=image(PERSON02)))
    assert groups_of(api, "u1") == {"g1": "kept"}
    assert_ok(api.call("faceset/user/update", uid="u1", group_id="g1", user_info="new", image=image(PERSON03)))
    assert groups_of(api, "u1") == {"g1": "new"}
    assert_consistent(services)


def test_user_update_of_an_unknown_uid_is_user_not_exist(api, services):
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/user/update", uid="nobody", group_id="g1", user_info="x", image=image(PERSON02)), 216612)
    assert_error(api.call("faceset/user/update", uid="nobody", image=image(PERSON02)), 216612)
    assert groups_of(api, "nobody") == {}
    assert_consistent(services)


def test_user_update_with_replace_registers_an_unknown_uid(api, services, faces_in):
    answer = api.call("faceset/user/update", uid="u1", group_id="g1", user_info="new", action_type="replace", image=image(PERSON02))
    assert_ok(answer)
    assert groups_of(api, "u1") == {"g1": "new"}
    assert faces_in("g1") == 1
    assert_consistent(services)


def test_user_update_with_replace_of_an_unknown_uid_needs_a_group(api, services):
    answer = api.call("faceset/user/update", uid="u1", user_info="x", action_type="replace", image=image(PERSON02))
    assert_error(answer, 216101)
    assert group_list(api) == []
    assert_consistent(services)


def test_user_update_with_a_faceless_image_keeps_the_old_photos(api, services, faces_in):
    assert_ok(add(api, "u1", "g1", PERSON05))
    assert_error(api.call("faceset/user/update", uid="u1", group_id="g1", image=b64(grey_png())), 216402)
    assert faces_in("g1") == 1
    assert_error(add(api, "u1", "g1", PERSON05), 216616)  # still the original photo
    assert_consistent(services)


# -- user/delete --------------------------------------------------------------------------------


def test_user_delete_removes_the_user_from_every_group_and_identify_no_longer_finds_it(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2", PERSON05))
    assert_ok(add(api, "keep", "g1", PERSON02))
    assert_ok(api.call("faceset/user/delete", uid="u1"))
    assert groups_of(api, "u1") == {}
    assert group_list(api) == ["g1"]  # g2 was emptied
    assert user_list(api, "g1") == [{"uid": "keep", "user_info": "info"}]
    assert (faces_in("g1"), faces_in("g2")) == (1, 0)
    answer = api.call("identify", group_id="g1", user_top_num=5, image=image(PERSON05_OTHER))
    assert [m["uid"] for m in answer["result"]] == ["keep"]
    assert_error(api.call("identify", group_id="g2", image=image(PERSON05_OTHER)), 216618)
    assert_consistent(services)


def test_user_delete_with_group_id_removes_only_that_group(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2,g3", PERSON05))
    assert_ok(api.call("faceset/user/delete", uid="u1", group_id="g1,g3"))
    assert groups_of(api, "u1") == {"g2": "info"}
    assert group_list(api) == ["g2"]
    assert (faces_in("g1"), faces_in("g2"), faces_in("g3")) == (0, 1, 0)
    assert_consistent(services)


def test_user_delete_of_an_unknown_uid_is_user_not_exist(api, services):
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/user/delete", uid="nobody"), 216612)
    assert_error(api.call("faceset/user/delete", uid="u1", group_id="g2"), 216612)
    assert groups_of(api, "u1") == {"g1": "info"}
    assert_consistent(services)


def test_user_delete_twice_is_user_not_exist_the_second_time(api, services):
    assert_ok(add(api, "u1", "g1"))
    assert_ok(api.call("faceset/user/delete", uid="u1"))
    assert_error(api.call("faceset/user/delete", uid="u1"), 216612)
    assert_consistent(services)


def test_a_deleted_user_can_register_the_same_photo_again(api, services, faces_in):
    assert_ok(add(api, "u1", "g1"))
    assert_ok(api.call("faceset/user/delete", uid="u1"))
    assert_ok(add(api, "u1", "g1"))
    assert faces_in("g1") == 1
    assert_consistent(services)


# -- user/get -----------------------------------------------------------------------------------


def test_user_get_answers_one_entry_per_group_with_that_groups_user_info(api):
    assert_ok(add(api, "u1", "g1", info="in one"))
    assert_ok(add(api, "u1", "g2", info="in two"))
    answer = api.call("faceset/user/get", uid="u1")
    assert set(answer) == {"log_id", "result_num", "result"}
    assert answer["result_num"] == 2
    assert sorted(answer["result"], key=lambda e: e["group_id"]) == [
        {"uid": "u1", "user_info": "in one", "group_id": "g1"},
        {"uid": "u1", "user_info": "in two", "group_id": "g2"},
    ]


def test_user_get_with_group_id_answers_only_those_groups(api):
    assert_ok(add(api, "u1", "g1,g2,g3"))
    answer = api.call("faceset/user/get", uid="u1", group_id="g2")
    assert answer["result_num"] == 1
    assert answer["result"] == [{"uid": "u1", "user_info": "info", "group_id": "g2"}]
    answer = api.call("faceset/user/get", uid="u1", group_id="g1,g3")
    assert sorted(e["group_id"] for e in answer["result"]) == ["g1", "g3"]


def test_user_get_works_with_get_as_chapter_1_documents(api):
    assert_ok(add(api, "u1", "g1"))
    answer = api.call("faceset/user/get", method="GET", uid="u1")
    assert answer["result"] == [{"uid": "u1", "user_info": "info", "group_id": "g1"}]


def test_user_get_of_an_unknown_uid_is_user_not_exist(api):
    assert_error(api.call("faceset/user/get", uid="nobody"), 216611)
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/user/get", uid="u1", group_id="g2"), 216611)


def test_user_get_with_an_invalid_uid_is_invalid_userid(api):
    assert_error(api.call("faceset/user/get", uid="no-such"), 216111)


# -- group/getlist ------------------------------------------------------------------------------

CREATION_ORDER = ["g_c", "g_a", "g_e", "g_b", "g_d"]  # not alphabetical


@pytest.fixture
def five_groups(api):
    for group in CREATION_ORDER:
        assert_ok(add(api, "u1", group))
    return CREATION_ORDER


def test_getlist_of_an_empty_library_is_empty(api):
    answer = api.call("faceset/group/getlist")
    assert answer == {"log_id": answer["log_id"], "result_num": 0, "result": []}


def test_getlist_answers_group_ids_in_creation_order(api, five_groups):
    answer = api.call("faceset/group/getlist")
    assert answer == {"log_id": answer["log_id"], "result_num": 5, "result": five_groups}


@pytest.mark.parametrize("size_name", ["num", "end"])
def test_getlist_pages_by_start_and_page_size(api, five_groups, size_name):
    assert group_list(api, start=0, **{size_name: 2}) == five_groups[:2]
    assert group_list(api, start=1, **{size_name: 2}) == five_groups[1:3]
    assert group_list(api, start=4, **{size_name: 10}) == five_groups[4:]
    assert group_list(api, start=5, **{size_name: 10}) == []
    assert group_list(api, start=2) == five_groups[2:]
    assert group_list(api, **{size_name: 1000}) == five_groups


def test_getlist_pages_with_get_and_a_query_string(api, five_groups):
    answer = api.call("faceset/group/getlist", method="GET", start=3, num=1)
    assert answer["result"] == five_groups[3:4]


@pytest.mark.parametrize(
    "paging",
    [{"start": -1}, {"num": -1}, {"start": "x"}, {"num": "ten"}],
    ids=["negative-start", "negative-num", "start-not-a-number", "num-not-a-number"],
)
def test_getlist_with_a_bad_page_is_an_invalid_param(api, paging):
    assert_error(api.call("faceset/group/getlist", **paging), 216100)


@pytest.mark.parametrize("size_name", ["num", "end"])
def test_getlist_page_sizes_above_1000_count_as_1000_and_0_as_the_default(api, five_groups, size_name):
    """§1.11.2 says at most 1000 are returned: a larger page is not refused."""
    assert group_list(api, start=1, **{size_name: 1001}) == five_groups[1:]
    assert group_list(api, start=1, **{size_name: 0}) == five_groups[1:]


# -- group/getusers -----------------------------------------------------------------------------

JOIN_ORDER = ["zed", "amy", "mo", "bob", "kai"]  # not alphabetical


@pytest.fixture
def five_users(api):
    for number, uid in enumerate(JOIN_ORDER):
        assert_ok(add(api, uid, "g1", info=f"user {number}"))
    return [{"uid": uid, "user_info": f"user {number}"} for number, uid in enumerate(JOIN_ORDER)]


def test_getusers_answers_uid_and_user_info_in_join_order(api, five_users):
    answer = api.call("faceset/group/getusers", group_id="g1")
    assert answer == {"log_id": answer["log_id"], "result_num": 5, "result": five_users}


@pytest.mark.parametrize("size_name", ["num", "end"])
def test_getusers_pages_by_start_and_page_size(api, five_users, size_name):
    assert user_list(api, "g1", start=0, **{size_name: 2}) == five_users[:2]
    assert user_list(api, "g1", start=2, **{size_name: 2}) == five_users[2:4]
    assert user_list(api, "g1", start=4, **{size_name: 2}) == five_users[4:]
    assert user_list(api, "g1", start=5) == []
    assert user_list(api, "g1", **{size_name: 1000}) == five_users


def test_getusers_lists_only_the_groups_own_users(api, five_users):
    assert_ok(add(api, "other", "g2"))
    assert user_list(api, "g2") == [{"uid": "other", "user_info": "info"}]
    assert [u["uid"] for u in user_list(api, "g1")] == JOIN_ORDER


def test_getusers_of_an_unknown_group_is_empty(api):
    assert_ok(add(api, "u1", "g1"))
    assert user_list(api, "nosuchgroup") == []


@pytest.mark.parametrize(
    "params, code",
    [({}, 216101), ({"group_id": "g1,g2"}, 216100), ({"group_id": "g-1"}, 216100), ({"group_id": "g1", "num": -1}, 216100)],
    ids=["no-group", "two-groups", "bad-group", "num-negative"],
)
def test_getusers_with_bad_parameters_is_refused(api, params, code):
    assert_error(api.call("faceset/group/getusers", **params), code)


# -- group/adduser ------------------------------------------------------------------------------


def test_adduser_copies_the_user_with_its_info_and_faces_into_the_groups(api, services, faces_in):
    assert_ok(add(api, "u1", "src", PERSON05, info="copied"))
    assert_ok(add(api, "u1", "src", PERSON05_OTHER, info="copied"))
    assert_ok(add(api, "other", "dst1", PERSON02))
    assert_ok(api.call("faceset/group/adduser", uid="u1", src_group_id="src", group_id="dst1,dst2"))
    assert groups_of(api, "u1") == {"src": "copied", "dst1": "copied", "dst2": "copied"}
    assert user_list(api, "dst1") == [{"uid": "other", "user_info": "info"}, {"uid": "u1", "user_info": "copied"}]
    assert group_list(api) == ["src", "dst1", "dst2"]
    assert (faces_in("src"), faces_in("dst1"), faces_in("dst2")) == (2, 3, 2)
    assert_consistent(services)


def test_a_copied_user_is_found_by_identify_in_the_new_group_even_after_leaving_the_source(api, services):
    assert_ok(add(api, "u1", "src", PERSON05))
    assert_ok(add(api, "other", "dst", PERSON02))
    assert_ok(api.call("faceset/group/adduser", uid="u1", src_group_id="src", group_id="dst"))
    answer = api.call("identify", group_id="dst", image=image(PERSON05_OTHER))
    assert [(m["group_id"], m["uid"]) for m in answer["result"]] == [("dst", "u1")]
    assert_ok(api.call("faceset/user/delete", uid="u1", group_id="src"))
    answer = api.call("identify", group_id="dst", image=image(PERSON05_OTHER))
    assert [(m["group_id"], m["uid"]) for m in answer["result"]] == [("dst", "u1")]
    assert_consistent(services)


def test_adduser_into_a_group_the_user_is_in_already_is_refused_and_changes_nothing(api, services, faces_in):
    assert_ok(add(api, "u1", "src,dst", PERSON05))
    for target in ("dst", "new,dst", "src"):  # §1.13.3's example message
        answer = api.call("faceset/group/adduser", uid="u1", src_group_id="src", group_id=target)
        assert_error(answer, 216100, ALREADY_ADDED)
    assert set(groups_of(api, "u1")) == {"src", "dst"}
    assert group_list(api) == ["src", "dst"]
    assert (faces_in("src"), faces_in("dst"), faces_in("new")) == (1, 1, 0)
    assert_consistent(services)


def test_adduser_without_src_group_id_copies_from_the_uids_only_group(api, services, faces_in):
    """The C# chapter's AddUser sends no src_group_id: the uid's one group is the source; a uid
    in several groups must name it."""
    assert_ok(add(api, "u1", "src", PERSON05))
    assert_ok(api.call("faceset/group/adduser", uid="u1", group_id="dst"))
    assert (faces_in("src"), faces_in("dst")) == (1, 1)
    assert_error(api.call("faceset/group/adduser", uid="u1", group_id="third"), 216100)
    assert_error(api.call("faceset/group/adduser", uid="nobody", group_id="dst"), 216611)
    assert_consistent(services)


def test_user_add_of_several_comma_joined_images_registers_each(api, services, faces_in):
    """The C# chapter's User.Register(images, ...) sends several images comma-joined."""
    images = ",".join(image(p) for p in (PERSON05, PERSON05_OTHER))
    assert_ok(api.call("faceset/user/add", uid="u1", user_info="", group_id="g1", images=images))
    assert faces_in("g1") == 2
    assert_error(api.call("faceset/user/add", uid="u1", user_info="", group_id="g1", images=images), 216616)
    faceless = ",".join([image(PERSON02), b64(grey_png())])
    assert_error(api.call("faceset/user/add", uid="u2", user_info="", group_id="g1", images=faceless), 216402)
    assert faces_in("g1") == 2  # nothing of the refused request was stored
    assert_consistent(services)


def test_adduser_of_a_user_not_in_the_source_group_is_user_not_exist(api, services):
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/group/adduser", uid="u1", src_group_id="g2", group_id="g3"), 216611)
    assert_error(api.call("faceset/group/adduser", uid="nobody", src_group_id="g1", group_id="g3"), 216611)
    assert group_list(api) == ["g1"]
    assert_consistent(services)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"uid": "u9", "group_id": "g2"}, 216611),  # no src_group_id: the uid's one group, and it has none
        ({"uid": "u1", "src_group_id": "g1"}, 216101),
        ({"uid": "u1", "src_group_id": "g1,g2", "group_id": "g3"}, 216100),
        ({"uid": "u-1", "src_group_id": "g1", "group_id": "g3"}, 216111),
    ],
    ids=["no-source-of-an-unknown-uid", "no-target", "two-sources", "bad-uid"],
)
def test_adduser_with_bad_parameters_is_refused(api, services, params, code):
    assert_ok(add(api, "u1", "g1"))
    assert_error(api.call("faceset/group/adduser", **params), code)
    assert group_list(api) == ["g1"]
    assert_consistent(services)


# -- group/deleteuser ---------------------------------------------------------------------------


def test_deleteuser_removes_the_user_from_the_listed_groups_only(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2,g3", PERSON05))
    assert_ok(add(api, "u2", "g2", PERSON02))
    assert_ok(api.call("faceset/group/deleteuser", uid="u1", group_id="g1,g2"))
    assert groups_of(api, "u1") == {"g3": "info"}
    assert group_list(api) == ["g2", "g3"]  # g1 was emptied, g2 still has u2
    assert user_list(api, "g2") == [{"uid": "u2", "user_info": "info"}]
    assert (faces_in("g1"), faces_in("g2"), faces_in("g3")) == (0, 1, 1)
    assert_consistent(services)


def test_deleteuser_from_the_users_only_group_is_refused_and_changes_nothing(api, services, faces_in):
    assert_ok(add(api, "u1", "g1"))
    answer = api.call("faceset/group/deleteuser", uid="u1", group_id="g1")
    assert_error(answer, 216619)
    assert answer["error_msg"] == "user must be in one group at least"
    assert groups_of(api, "u1") == {"g1": "info"}
    assert faces_in("g1") == 1
    assert_consistent(services)


def test_deleteuser_from_all_of_the_users_groups_at_once_is_refused(api, services, faces_in):
    assert_ok(add(api, "u1", "g1,g2"))
    assert_error(api.call("faceset/group/deleteuser", uid="u1", group_id="g1,g2"), 216619)
    assert set(groups_of(api, "u1")) == {"g1", "g2"}
    assert (faces_in("g1"), faces_in("g2")) == (1, 1)
    assert_consistent(services)


def test_deleteuser_of_a_non_member_is_user_not_exist(api, services):
    assert_ok(add(api, "u1", "g1,g2"))
    assert_ok(add(api, "u2", "g3"))
    assert_error(api.call("faceset/group/deleteuser", uid="u1", group_id="g3"), 216611)
    assert_error(api.call("faceset/group/deleteuser", uid="nobody", group_id="g1"), 216611)
    assert set(groups_of(api, "u1")) == {"g1", "g2"}
    assert_consistent(services)


@pytest.mark.parametrize("params", [{"uid": "u1"}, {"group_id": "g1"}], ids=["no-group", "no-uid"])
def test_deleteuser_without_a_required_parameter_lacks_a_parameter(api, params):
    assert_error(api.call("faceset/group/deleteuser", **params), 216101)


# -- apps are isolated --------------------------------------------------------------------------


def test_another_app_sees_none_of_the_first_apps_library_and_keeps_its_own(app, api, services, faces_in):
    assert_ok(add(api, "u1", "g1", PERSON05, info="first app"))
    keys = services.auth.create_keys()
    other = BaiduClient(app.test_client(), services.auth.issue_token(keys.api_key, keys.secret_key)["access_token"])

    assert group_list(other) == []
    assert_error(other.call("faceset/user/get", uid="u1"), 216611)
    assert_error(other.call("identify", group_id="g1", image=image(PERSON05_OTHER)), 216618)
    assert_error(other.call("faceset/user/delete", uid="u1"), 216612)

    assert_ok(add(other, "u1", "g1", PERSON05, info="second app"))  # same photo: no 216616 across apps
    assert groups_of(other, "u1") == {"g1": "second app"}
    assert groups_of(api, "u1") == {"g1": "first app"}
    assert faces_in("g1") == 1
    assert_ok(other.call("faceset/user/delete", uid="u1"))
    assert groups_of(api, "u1") == {"g1": "first app"}
    assert group_list(other) == []
    assert group_list(api) == ["g1"]
    assert_consistent(services)


def test_faces_are_stored_in_float16_and_older_float32_faces_still_serve(api, services, redis_client):
    """A face's embedding takes 1,280 bytes (float16); a face stored before, in float32, is
    still identified, verified, copied and exported."""
    assert_ok(api.call("faceset/user/add", uid="new", user_info="", group_id="g1", image=b64(photo("images/person01/img5.jpg"))))
    assert_ok(api.call("faceset/user/add", uid="old", user_info="", group_id="g1", image=b64(photo("images/person02/img12.jpg"))))
    faces = {redis_client.hget(key, "uid").decode(): key for key in redis_client.scan_iter("fs:{*}:face:*")}
    half = redis_client.hget(faces["new"], "v16")
    assert len(half) == 2 * 640 and redis_client.hget(faces["new"], "vec") is None
    # "old" as facesvc before float16 stored it; its index entry stays, so search reads it back.
    vector = np.frombuffer(redis_client.hget(faces["old"], "v16"), "<f2").astype("<f4")
    redis_client.hdel(faces["old"], "v16")
    redis_client.hset(faces["old"], "vec", vector.tobytes())
    probe = b64(photo("images/person02/img55.jpg"))
    assert api.call("identify", group_id="g1", image=probe)["result"][0]["uid"] == "old"
    assert api.call("verify", uid="old", group_id="g1", image=probe)["result"][0] > 80
    assert_ok(api.call("faceset/group/adduser", uid="old", src_group_id="g1", group_id="g2"))
    assert api.call("identify", group_id="g2", image=probe)["result"][0]["uid"] == "old"
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []
