"""Reading traffic: rate CSVs, request logs and the router's own /metrics scrapes."""

from __future__ import annotations

import pytest

from graph_router.errors import SpecError
from graph_router.planner.traffic import SPARSE_RPS, TAIL_S, discretize, parse_traffic
from graph_router.telemetry.metrics import Metrics


def test_a_rate_csv_holds_each_rate_until_the_next_row() -> None:
    t = parse_traffic("# a comment\nt_s,rps\n0,2\n3,5.5\n5,0\n# share pick.x=0.25\n", source="f.csv", graph="g")
    assert t.kind == "rate"
    assert t.rps[:6] == [2.0, 2.0, 2.0, 5.5, 5.5, 0.0]
    assert len(t.rps) == 5 + TAIL_S
    assert t.shares == {"pick.x": 0.25}


def test_duration_cuts_or_extends_with_the_last_rate() -> None:
    t = parse_traffic("t_s,rps\n0,1\n2,4\n", source="f.csv", graph="g", duration=10)
    assert t.rps == [1.0, 1.0] + [4.0] * 8


def test_a_request_log_counts_requests_per_second() -> None:
    text = "timestamp\n1700000000.2\n1700000000.9\n1700000002.5,GET /\n2023-11-14T22:13:23.5Z\n"
    t = parse_traffic(text, source="log.txt", graph="g")
    assert t.kind == "log"
    # 2023-11-14T22:13:23.5Z is 1700000003.5: seconds 0 (two requests), 2 and 3 after the first.
    assert t.rps[:4] == [2.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t_s,rps\n0,1\nten,2\n", r"f: line 3: expected t_s,rps \(two numbers >= 0, e\.g\. 3600,25\), got 'ten,2'"),
        ("t_s,rps\n10,1\n5,2\n", r"f: line 3: t_s 5 is not after the previous row's 10: rows go in time order"),
        ("t_s,rps\n0,-1\n", r"line 2: expected t_s,rps"),
        ("t_s,rps\n", r"no rows after the header t_s,rps"),
        ("", r"no traffic in the file"),
        ("hello,world\n", r"f: line 1: unrecognised traffic 'hello,world': expected the header t_s,rps"),
        ("t_s,rps\n0,1\n# share pick.x=2\n", r"line 3: share '2' of pick\.x: expected a fraction from 0 to 1"),
        ("1700000000\nnot-a-time\n", r"line 2: expected a timestamp \(seconds or ISO 8601\) first"),
    ],
)
def test_bad_traffic_says_what_where_and_how_to_fix(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_traffic(text, source="f", graph="g")


def _scrape(m: Metrics, at: float) -> str:
    return f"# scrape_time {at}\n" + m.exposition()[0].decode()


def test_saved_scrapes_of_the_router_give_rates_latencies_and_switch_shares() -> None:
    m = Metrics(multiprocess=False)
    series = _scrape(m, 1000.0)
    for i in range(100):  # 100 requests in the first 10 s: 3 to x, 1 to y
        m.request_started("g")
        m.request_finished("g", 200, 0.3)
        m.step_finished(("g", "root", "0", "first"), 0.1, None)
        m.step_finished(("g", "pick", "x" if i % 4 else "y", "x" if i % 4 else "http://y.ns.svc/v1"), 0.2, None)
        m.branch_taken("g", "pick", "x" if i % 4 else "y", "Switch")
        m.request_started("other")
        m.request_finished("other", 200, 0.1)
    series += _scrape(m, 1010.0)
    for _ in range(40):  # 40 more in the next 20 s
        m.request_started("g")
        m.request_finished("g", 503, 0.3)
    series += _scrape(m, 1030.0)
    t = parse_traffic(series, source="scrapes.txt", graph="g")
    assert t.kind == "prometheus"
    assert t.rps[:30] == [10.0] * 10 + [2.0] * 20
    assert t.shares == {"pick.x": 0.75, "pick.y": 0.25}
    assert t.service_times == pytest.approx({"first": 0.1, "x": 0.2, "y.ns.svc": 0.2})


def test_samples_with_their_own_timestamps_are_scrapes_too() -> None:
    text = ('graph_router_requests_total{graph="g",status="200"} 10 1000000\n'
            'graph_router_requests_total{graph="g",status="200"} 70 1030000\n')
    assert parse_traffic(text, source="f", graph="g").rps[:30] == [2.0] * 30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('graph_router_requests_total{graph="g",status="200"} 10\n', r"a sample without a time"),
        ('# scrape_time 1\ngraph_router_requests_total{graph="g",status="200"} 1\n', r"1 scrape\(s\): a rate needs"),
        ('# scrape_time 1\ngraph_router_requests_total{graph="h",status="200"} 1\n# scrape_time 2\n'
         'graph_router_requests_total{graph="h",status="200"} 3\n', r'no graph_router_requests_total samples for '
                                                                   r'graph "g"'),
    ],
)
def test_bad_scrapes_are_explained(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_traffic(text, source="f", graph="g")


def test_low_rates_become_whole_requests_drawn_with_a_seed() -> None:
    rps = [0.01] * 20_000 + [50.0] * 10
    a, b = discretize(rps, seed=1), discretize(rps, seed=1)
    assert a == b
    assert a != discretize(rps, seed=2)
    assert all(x == int(x) for x in a[:20_000])
    assert 150 <= sum(a[:20_000]) <= 250  # about 200 requests
    assert a[20_000:] == [50.0] * 10  # at SPARSE_RPS and above the rate is kept as it is
    assert SPARSE_RPS <= 50
