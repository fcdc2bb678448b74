"""The `anomaly:` config section: stable keys, defaults, errors that name the key."""

from __future__ import annotations

import pytest

from shipper import config
from shipper.config import ConfigError

BASE = {"inputs": [{"id": "a", "paths": ["/tmp/x/*.log"]}]}


def test_defaults_and_stable_keys() -> None:
    a = config.from_dict(BASE).anomaly
    assert (a.enabled, a.window, a.grace, a.history, a.min_history, a.sigma, a.clear_sigma) == (
        True,
        10.0,
        5.0,
        60,
        10,
        3.0,
        2.0,
    )
    assert a.metrics_index.startswith("shipper-metrics") and a.anomalies_index.startswith("shipper-anomalies")
    c = config.from_dict(
        {
            **BASE,
            "anomaly": {
                "window": "1s",
                "history": 30,
                "sigma": 4,
                "notify": [{"webhook": "https://hooks.example/x", "timeout": "2s", "retries": 0}],
                "directions": {"metrics.gpu_*.mean": "off"},
            },
        }
    ).anomaly
    assert (c.window, c.history, c.sigma) == (1.0, 30, 4.0)
    assert c.notify == (("https://hooks.example/x", 2.0, 0),)
    assert c.directions == (("metrics.gpu_*.mean", "off"),)


@pytest.mark.parametrize(
    ("anomaly", "path", "reason"),
    [
        ({"sigma": 0}, "anomaly.sigma", "standard deviations"),
        ({"sigma": 2, "clear_sigma": 3}, "anomaly.clear_sigma", "never clear"),
        ({"window": "10ms"}, "anomaly.window", "at least 100ms"),
        ({"history": 0}, "anomaly.history", "positive integer"),
        ({"metrics_index": "my-metrics"}, "anomaly.metrics_index", "must start with 'shipper-metrics'"),
        ({"notify": [{"webhook": "ftp://x"}]}, "anomaly.notify[0].webhook", "http(s) URL"),
        ({"notify": [{"webhook": "http://x:1/h", "retries": -1}]}, "anomaly.notify[0].retries", ">= 0"),
        ({"directions": {"events": "sideways"}}, "anomaly.directions.events", "up, down, both, off"),
        ({"windw": "1s"}, "anomaly.windw", "did you mean 'window'"),
    ],
)
def test_errors_name_the_key(anomaly: dict, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.from_dict({**BASE, "anomaly": anomaly})
    assert e.value.path == path
    assert reason in e.value.reason
