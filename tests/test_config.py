"""Config errors name the key path and the reason; defaults follow the value conventions."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper import config
from shipper.config import ConfigError
from shipper.units import parse_duration, parse_size

BASE = {"inputs": [{"id": "trainer", "paths": ["/srv/models/**/*.log"]}]}


def _with(**kw: object) -> dict:
    return {**BASE, **kw}


def test_defaults() -> None:
    cfg = config.from_dict(BASE, env={}, base=Path("/etc/shipper"))
    assert cfg.data_dir == Path("/etc/shipper/data")
    assert cfg.inputs[0].index == "shipper-logs-trainer-%Y.%m.%d"
    assert cfg.inputs[0].format == "plain"
    assert cfg.elasticsearch.hosts == ["http://127.0.0.1:9200"]
    assert cfg.http_listen == "127.0.0.1:9108"
    assert cfg.elasticsearch.flush_interval == 0.25
    assert cfg.max_inflight_bytes == 8 << 20


def test_stable_keys_from_the_issue() -> None:
    raw = {
        "data_dir": "./data",
        "inputs": [{"id": "trainer", "paths": ["/srv/models/**/*.log"], "exclude": ["**/*.gz"], "format": "plain"}],
        "output": {"elasticsearch": {"hosts": ["http://127.0.0.1:9200"], "index": "shipper-logs-{input}-%Y.%m.%d"}},
        "http": {"listen": "127.0.0.1:9108"},
    }
    cfg = config.from_dict(raw, env={})
    assert cfg.inputs[0].exclude == ["**/*.gz"]


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (_with(data_dri="x"), "data_dri", "did you mean 'data_dir'"),
        ({"inputs": [{"id": "t", "paths": ["x"], "exlude": []}]}, "inputs[0].exlude", "did you mean 'exclude'"),
        ({"inputs": [{"id": "t"}]}, "inputs[0].paths", "is required"),
        ({}, "inputs", "is required"),
        ({"inputs": [{"id": "Trainer", "paths": ["x"]}]}, "inputs[0].id", "not a valid input id"),
        ({"inputs": [{"id": "t", "paths": ["x"], "scan_interval": "10"}]}, "inputs[0].scan_interval", "duration"),
        ({"inputs": [{"id": "t", "paths": ["x"], "max_line_bytes": "1 MB"}]}, "inputs[0].max_line_bytes", "size"),
        ({"inputs": [{"id": "t", "paths": ["x"], "format": "xml"}]}, "inputs[0].format", "expected one of"),
        (_with(output={"elasticsearch": {"index": "Logs-{input}"}}), "output.elasticsearch.index", "lower case"),
        (_with(output={"elasticsearch": {"hosts": ["127.0.0.1:9200"]}}), "output.elasticsearch.hosts[0]", "URL"),
        (_with(output={"elasticsearch": {"username": "u"}}), "output.elasticsearch.password", "required"),
        (_with(http={"listen": "9108"}), "http.listen", "host:port"),
        ({"inputs": [{"id": "t", "paths": ["x"]}, {"id": "t", "paths": ["y"]}]}, "inputs[1].id", "duplicate"),
        (
            _with(output={"elasticsearch": {"hosts": "x", "tls": {"verfy": False}}}),
            "output.elasticsearch.tls.verfy",
            "verify",
        ),
    ],
)
def test_errors_name_key_and_reason(raw: dict, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.from_dict(raw, env={})
    assert e.value.path == path
    assert reason in str(e.value)


def test_env_expansion_and_secret_not_in_repr() -> None:
    raw = _with(
        output={"elasticsearch": {"username": "shipper", "password": "${ES_PW}", "hosts": ["${ES:-http://h:1}"]}}
    )
    cfg = config.from_dict(raw, env={"ES_PW": "s3cret"})
    assert cfg.elasticsearch.password == "s3cret"
    assert cfg.elasticsearch.hosts == ["http://h:1"]
    assert "s3cret" not in repr(cfg)
    with pytest.raises(ConfigError, match="ES_PW is not set") as e:
        config.from_dict(raw, env={})
    assert e.value.path == "output.elasticsearch.password"


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    raw = _with(output={"elasticsearch": {"username": "u", "password_file": str(tmp_path / "pw")}})
    assert config.from_dict(raw, env={}).elasticsearch.password == "from-file"


def test_load_reports_yaml_errors(tmp_path: Path) -> None:
    p = tmp_path / "c.yml"
    p.write_text("inputs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(p)
    # read with libyaml's loader; an error is told by the pure-Python one, which quotes the line
    p.write_text("data_dir: /tmp/x\ninputs:\n  - id: a\n    paths: [/tmp/*.log]\n   bad: 1\n")
    with pytest.raises(ConfigError, match=r"(?s)line 5, column 4:\n +bad: 1\n +\^"):
        config.load(p)


def test_the_yaml_loader_reads_what_the_pure_python_one_reads() -> None:
    import yaml

    text = (
        "a: yes\nb: off\nc: 0o17\nd: 017\ne: 1_000\nf: 2026-12-08\ng: ~\nh: .inf\ni: 0x1f\nj: 1e3\n"
        "k: '1'\nl: [1, 2, {m: n}]\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\nu: !!str 5\nv: 190:20:30\n"
        'w: "\\u00e9\\t${X:-y}"\nx: |\n  two\n  lines\n'
    )
    assert repr(yaml.load(text, Loader=config._YAML_LOADER)) == repr(yaml.safe_load(text))


def test_units() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("512KiB") == 512 << 10
    for bad in ("10", "1d", "", None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_reference_lists_every_key() -> None:
    ref = config.reference()
    for key in ("data_dir", "inputs[].paths", "inputs[].exclude", "output.elasticsearch.tls.ca_file", "http.listen"):
        assert f"`{key}`" in ref


def test_docs_reference_is_current() -> None:
    doc = Path(__file__).parent.parent / "docs" / "config.md"
    assert doc.read_text() == config.reference(), "regenerate with: shipper config-reference > docs/config.md"


def test_data_stream_template_is_found() -> None:
    from shipper.sinks.elasticsearch import data_stream_template

    templates = [
        {"name": "logs", "index_template": {"index_patterns": ["logs-*-*"], "priority": 100, "data_stream": {}}},
        {"name": "mine", "index_template": {"index_patterns": ["shipper-logs-*"], "priority": 200}},
        {"name": "ds-all", "index_template": {"index_patterns": ["shipper-*"], "priority": 10, "data_stream": {}}},
        {"name": "ds-top", "index_template": {"index_patterns": ["shipper-x-*"], "priority": 900, "data_stream": {}}},
    ]
    assert data_stream_template(templates, "logs-app-default") == "logs"
    assert data_stream_template(templates, "shipper-logs-t-2026.11.25") is None  # the higher priority wins
    assert data_stream_template(templates, "shipper-x-1") == "ds-top"
    assert data_stream_template(templates, "other") is None


def test_http_listen_null_disables() -> None:
    assert config.from_dict(_with(http={"listen": None}), env={}).http_listen is None
    assert config.from_dict(_with(http={}), env={}).http_listen == "127.0.0.1:9108"


@pytest.mark.parametrize(
    ("inp", "path", "reason"),
    [
        ({"format": "<Date> <Nope"}, "inputs[0].format", "unclosed"),
        ({"format": "xml"}, "inputs[0].format", "expected one of plain, json, logfmt, python"),
        ({"format": "<Date> <message>"}, "inputs[0].format", "message"),
        ({"format": "python", "timezone": "Mars/Base"}, "inputs[0].timezone", "Mars/Base"),
    ],
)
def test_format_errors_name_the_key(inp: dict, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.from_dict({"inputs": [{"id": "t", "paths": ["x"], **inp}]}, env={})
    assert e.value.path == path
    assert reason in str(e.value)


def test_formats_accepted() -> None:
    for fmt in (
        "plain",
        "json",
        "logfmt",
        "python",
        "%(asctime)s %(levelname)s %(message)s",
        "%{ts} %{level} %{Content}",
        "<Date> <Time> <Level>: <Content>",
    ):
        assert (
            config.from_dict({"inputs": [{"id": "t", "paths": ["x"], "format": fmt}]}, env={}).inputs[0].format == fmt
        )


def test_the_records_are_frozen_dataclasses_made_by_keyword() -> None:
    """The config's records share one keyword-only ``__init__`` (start-up cost, issue 8);
    the rest is dataclasses' own: frozen, equal by value, ``fields``/``replace``/``asdict``."""
    import dataclasses

    cfg = config.from_dict(BASE, env={}, base=Path("/etc/shipper"))
    again = config.from_dict(BASE, env={}, base=Path("/etc/shipper"))
    assert cfg == again and cfg is not again and cfg.inputs[0] == again.inputs[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.log_level = "debug"  # type: ignore[misc]
    a = config.AnomalyConfig(window=2.0)
    assert (a.window, a.history, a.notify) == (2.0, 60, ())  # defaults
    assert cfg.anomaly == config.AnomalyConfig() and hash(a) == hash(config.AnomalyConfig(window=2.0))
    assert dataclasses.replace(a, sigma=4.0) == config.AnomalyConfig(window=2.0, sigma=4.0)
    assert dataclasses.asdict(cfg.elasticsearch)["hosts"] == ["http://127.0.0.1:9200"]
    assert dataclasses.replace(cfg, log_level="debug").inputs is cfg.inputs
    assert [f.name for f in dataclasses.fields(cfg)][:3] == ["data_dir", "host_name", "inputs"]
    assert repr(a).startswith("AnomalyConfig(enabled=True, window=2.0, ")
    with pytest.raises(TypeError, match="missing keyword argument: 'data_dir'"):
        config.Config(host_name="h")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword arguments: bogus"):
        config.AnomalyConfig(bogus=1)  # type: ignore[call-arg]
    assert config.Config(**{**cfg.__dict__, "parse_threads": 2}).anomaly is cfg.anomaly  # given: kept
    no_anomaly = {k: v for k, v in cfg.__dict__.items() if k != "anomaly"}
    assert config.Config(**no_anomaly).anomaly == config.AnomalyConfig()  # the default factory's
