"""v3's error codes for the domain's conditions: the library, auth and parsing raise v2's codes
(service/errors.py), and v3 answers them with its own. A v3 code raised directly passes as it is.

v3's parameter codes say which parameter was wrong (222016 ``param[max_face_num] format
error``), so a v2 "invalid param" names its parameter (``FaceError.param``) and is looked up
here. A parameter with no code of its own answers 222200, as a body Baidu cannot read would.
"""
from __future__ import annotations

from service.api.params import BODY
from service.errors import ALREADY_ADDED, ERRORS, FaceError

# Parameter -> v3's "format error" code for it.
PARAM_CODES: dict[str, int] = {
    "start": 222002,
    "length": 222003,
    "group_id_list": 222005,
    "group_id": 222006,
    "src_group_id": 222006,
    "dst_group_id": 222006,
    "user_id": 222007,
    "user_info": 222010,
    "image": 222013,
    "image_type": 222015,
    "max_face_num": 222016,
    "face_field": 222017,
    "quality_control": 222019,
    "liveness_control": 222020,
    "max_user_num": 222021,
    "id_card_number": 222022,
    "name": 222023,
    "face_type": 222024,
    "face_token": 222025,
    "match_threshold": 222030,
    BODY: 222200,
}

# v2 code -> v3 code, for conditions both versions have. Gateway codes (< 1000) are the same.
FROM_V2: dict[int, int] = {
    216015: 6,  # module closed
    216100: 222200,  # an invalid parameter with no code of its own (see PARAM_CODES)
    216101: 222001,  # a parameter missing
    216102: 3,  # no such endpoint, or a method it does not take
    216103: 222200,
    216110: 15,
    216111: 222007,
    216200: 222013,  # empty image, or not base64
    216201: 222203,  # not an image facesvc can decode
    216202: 222013,  # image too large
    216300: 222302,
    216400: 222302,
    216401: 222302,
    216402: 222202,
    216500: 222302,
    216611: 223103,
    216612: 223103,
    216613: 222302,
    216614: 222208,
    216615: 222203,
    216616: 223105,
    216617: 222300,
    216618: 222207,  # searching groups without users finds nobody
    216619: 223103,
    216631: 223104,
}


# What a face refused at enrolment failed (FaceError.measure, with v2's 216615) -> v3's code.
# Size and pose have no code of their own: 223118 "quality control error", a failed item.
MEASURE_CODES: dict[str, int] = {
    "blur": 223114,
    "illumination": 223115,
    "completeness": 223116,
    "size": 223118,
    "pose": 223118,
}


def v3_code(error: FaceError) -> int:
    """The v3 code of an error raised anywhere below a v3 endpoint."""
    code = error.code
    if code < 1000 or code not in ERRORS:
        return code
    if code == 216100 and error.message == ALREADY_ADDED:  # user/copy into a group that has the user
        return 223102
    if code == 216615 and error.measure in MEASURE_CODES:
        return MEASURE_CODES[error.measure]
    if code in (216100, 216103) and error.param in PARAM_CODES:
        return PARAM_CODES[error.param]
    return FROM_V2[code]
