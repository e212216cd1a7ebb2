"""Request quotas (codes 4, 17, 18, 19): per-app QPS, daily and total limits and a cluster-wide
QPS limit, off by default, counted in Redis so that every process shares them."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from config.defaults import load_settings
from service.errors import ERRORS
from tests.helpers import BaiduClient, client_of

GETLIST = "faceset/group/getlist"


def codes(client: BaiduClient, count: int) -> list[int]:
    return [client.call(GETLIST).get("error_code", 0) for _ in range(count)]


def start_of_a_second() -> None:
    """Wait until a second has just begun, so a short burst stays inside it."""
    time.sleep(1 - time.time() % 1 + 0.01)


def test_quotas_are_off_by_default_and_cost_no_redis_call(app_with_quotas):
    app = app_with_quotas()
    quota = app.extensions["facesvc"].quota
    assert quota.cluster == [] and quota.app == []
    assert codes(client_of(app), 30) == [0] * 30


def test_daily_limit_is_17_and_counts_per_app(app_with_quotas):
    app = app_with_quotas(app_daily=3)
    first, second = client_of(app), client_of(app)
    assert codes(first, 5) == [0, 0, 0, 17, 17]
    assert codes(second, 3) == [0, 0, 0]
    answer = first.call(GETLIST)
    assert answer == {"error_code": 17, "error_msg": ERRORS[17], "log_id": answer["log_id"]}


def test_qps_limit_is_18_within_a_second_and_lifts_in_the_next(app_with_quotas):
    client = client_of(app_with_quotas(app_qps=2))
    start_of_a_second()
    assert codes(client, 4) == [0, 0, 18, 18]
    start_of_a_second()
    assert codes(client, 1) == [0]


def test_total_limit_is_19_and_outlasts_the_day(app_with_quotas):
    app = app_with_quotas(app_total=2, app_daily=100)
    client = client_of(app)
    assert codes(client, 4) == [0, 0, 19, 19]


def test_cluster_qps_limit_is_4_across_apps(app_with_quotas):
    app = app_with_quotas(cluster_qps=3)
    first, second = client_of(app), client_of(app)
    start_of_a_second()
    assert codes(first, 2) + codes(second, 2) == [0, 0, 0, 4]


def test_a_refused_request_uses_up_nothing(app_with_quotas):
    """Calls refused for QPS do not count against the day."""
    client = client_of(app_with_quotas(app_qps=1, app_daily=2))
    start_of_a_second()
    assert codes(client, 3) == [0, 18, 18]
    start_of_a_second()
    assert codes(client, 2) == [0, 17]


def test_quotas_hold_across_processes_sharing_redis(app_with_quotas):
    """Two app instances (as two gunicorn workers would) and 16 threads: exactly the daily
    limit is admitted, as every count is one atomic Lua script in Redis."""
    first = app_with_quotas(app_daily=10)
    second = app_with_quotas(app_daily=10)
    keys = first.extensions["facesvc"].auth.create_keys()
    clients = [client_of(first, keys), client_of(second, keys)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: clients[n % 2].call(GETLIST).get("error_code", 0), range(40)))
    assert answers.count(0) == 10 and answers.count(17) == 30


def test_quotas_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FACESVC_QUOTAS__APP_QPS", "5")
    monkeypatch.setenv("FACESVC_QUOTAS__CLUSTER_QPS", "50")
    quotas = load_settings().quotas
    assert (quotas.app_qps, quotas.cluster_qps, quotas.app_daily, quotas.app_total) == (5, 50, 0, 0)
