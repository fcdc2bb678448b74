"""Load, expand and validate the agent's YAML config.

Every error names the key path (`inputs[0].paths`) and the reason, and an unknown key
suggests the nearest known one: a typo in a config must never be silently ignored,
because an ignored `exclude` ships what the user meant to keep private. The schema is
data, so the config reference in the docs is generated from the same table
(`shipper config-reference`) and cannot drift from what the code accepts.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, dataclass_transform

import yaml

from .units import parse_duration, parse_size

FORMATS = ("plain", "json", "logfmt", "python")
# libyaml's loader when PyYAML was built with it (its wheels are): the same safe subset,
# ~1/6 of the pure-Python loader's instructions for a small config (8.7 -> 1.4 M)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_INPUT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class ConfigError(ValueError):
    """A config problem, with the key path it concerns."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


# --- the schema -------------------------------------------------------------------------


class Key(NamedTuple):
    """One config key: how to convert it, its default, and what it is for (the docs).

    A named tuple, not a dataclass: ~150 are made at import, and a frozen dataclass's six
    methods are compiled at every start (~3.4 M instructions)."""

    convert: Callable[[Any, str], Any]
    default: Any = None
    doc: str = ""
    required: bool = False
    null_ok: bool = False  # an explicit null means "off" rather than "the default"


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(path, f"expected a non-empty string, got {v!r}")
    return v


def _opt_str(v: Any, path: str) -> str | None:
    return None if v is None else _str(v, path)


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(path, f"expected true or false, got {v!r}")
    return v


def _str_list(v: Any, path: str) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise ConfigError(path, f"expected a list of strings, got {v!r}")
    return [_str(item, f"{path}[{i}]") for i, item in enumerate(v)]


def _nonempty_str_list(v: Any, path: str) -> list[str]:
    out = _str_list(v, path)
    if not out:
        raise ConfigError(path, "expected at least one entry")
    return out


def _duration(v: Any, path: str) -> float:
    try:
        return parse_duration(v)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def _size(v: Any, path: str) -> int:
    try:
        return parse_size(v)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def _pos_int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(path, f"expected a positive integer, got {v!r}")
    return v


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def convert(v: Any, path: str) -> str:
        if v not in choices:
            raise ConfigError(path, f"expected one of {', '.join(choices)}, got {v!r}")
        return str(v)

    return convert


def _input_id(v: Any, path: str) -> str:
    s = _str(v, path)
    if not _INPUT_ID.match(s):
        raise ConfigError(
            path,
            f"{s!r} is not a valid input id: use lower-case letters, digits, '_', '-', '.' "
            "(it becomes part of an Elasticsearch index name)",
        )
    return s


def _index_pattern(v: Any, path: str) -> str:
    s = _str(v, path)
    literal = re.sub(r"%[YmdHjU]|\{input\}", "", s)
    bad = set(literal) & set('\\/*?"<>| ,#:')
    if bad or literal != literal.lower() or s.startswith(("-", "_", "+")):
        raise ConfigError(
            path,
            f"{s!r} is not a valid index pattern: lower case, no {' '.join(sorted(bad)) or 'upper case'}; "
            "use {input} and strftime codes %Y %m %d %H",
        )
    return s


MULTILINE_SCHEMA: dict[str, Key] = {
    "start": Key(_opt_str, None, "A line matching this regex begins a new event (default: the auto rules)."),
    "max_lines": Key(_pos_int, 500, "An event with more lines is cut (tag truncated)."),
    "max_bytes": Key(_size, "1MiB", "An event with a longer message is cut (tag truncated)."),
    "timeout": Key(_duration, "2s", "An open event with no new line for this long is shipped."),
}


def _multiline(v: Any, path: str) -> str | dict[str, Any]:
    if v in ("auto", "none"):
        return str(v)
    if not isinstance(v, dict):
        raise ConfigError(
            path, f"expected auto, none or a mapping with start, max_lines, max_bytes, timeout; got {v!r}"
        )
    m = _validate(v, MULTILINE_SCHEMA, path)
    out: dict[str, Any] = {
        "max_lines": m["max_lines"],
        "max_bytes": m["max_bytes"],
        "timeout_ms": int(m["timeout"] * 1000),
    }
    if m["start"]:
        out["start"] = m["start"]
    return out


METRICS_SCHEMA: dict[str, Key] = {
    "names": Key(_str_list, [], "More metric names (matched like the built-in ones, also as the last `_` part)."),
    "aliases": Key(lambda v, p: _str_map(v, p), None, "More spellings: {logged: canonical}, e.g. {rew: reward}."),
}


def _str_map(v: Any, path: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise ConfigError(path, f"expected a mapping of strings, got {v!r}")
    return {_str(k, path): _str(x, _join(path, str(k))) for k, x in v.items()}


def _metrics(v: Any, path: str) -> str | dict[str, Any]:
    if v in ("auto", "none"):
        return str(v)
    if not isinstance(v, dict):
        raise ConfigError(path, f"expected auto, none or a mapping with names, aliases; got {v!r}")
    m = _validate(v, METRICS_SCHEMA, path)
    return {"names": m["names"], "aliases": m["aliases"] or {}}


def _scalar(v: Any, path: str) -> Any:
    if not isinstance(v, (str, int, float, bool)):
        raise ConfigError(path, f"expected a string, number or boolean, got {v!r}")
    return v


PREDICTIONS_SCHEMA: dict[str, Key] = {
    "label": Key(_str, required=True, doc="Field (dotted path) of the true label in each JSON line."),
    "prediction": Key(_opt_str, None, "Field of the predicted label (unset: not logged)."),
    "score": Key(_opt_str, None, "Field of the score (a number; unset: not logged)."),
    "positive": Key(_scalar, None, "The label value that is positive (default: true or 1)."),
}


def _predictions(v: Any, path: str) -> dict[str, Any] | None:
    if v is None:
        return None
    p = _validate(v, PREDICTIONS_SCHEMA, path)
    return {k: x for k, x in p.items() if x is not None}


_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PathFields:
    """``path_fields``: a glob whose ``{name}`` parts capture path segments as labels.

    ``**`` matches any depth, ``*`` and ``?`` within one segment, ``{name}`` one whole
    segment or part of one; the whole path must match."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.names: list[str] = []
        out = []
        i = 0
        while i < len(pattern):
            m = _CAPTURE.match(pattern, i)
            if m:
                if m.group(1) in self.names:
                    raise ValueError(f"the capture {{{m.group(1)}}} appears twice")
                self.names.append(m.group(1))
                out.append(f"(?P<{m.group(1)}>[^/]+)")
                i = m.end()
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        if not self.names:
            raise ValueError("has no {name} capture")
        self.regex = re.compile("".join(out))

    def labels(self, path: str) -> dict[str, str]:
        """The captures of ``path`` (empty when it does not match)."""
        m = self.regex.fullmatch(path)
        return dict(m.groupdict()) if m else {}


def source_of(template: str | None, labels: Mapping[str, str], input_id: str) -> str:
    """``source`` filled with a file's captures; the input's id when unset or a capture is missing."""
    if not template:
        return input_id
    try:
        return template.format_map(dict(labels))
    except (KeyError, IndexError, ValueError):
        return input_id


def _error_classes(v: Any, path: str) -> dict[str, list[str]]:
    from _fastparse._classes import build_classes

    if not isinstance(v, dict):
        raise ConfigError(path, f"expected a mapping of class -> [keyword, ...], got {v!r}")
    out = {str(k): _nonempty_str_list(x, _join(path, str(k))) for k, x in v.items()}
    try:
        build_classes(out)
    except (TypeError, ValueError) as e:
        name = next((k for k in out if repr(k) in str(e) or f".{k}" in str(e)), "")
        raise ConfigError(_join(path, name) if name else path, str(e).split(": ", 1)[-1]) from None
    return out


def _listen(v: Any, path: str) -> str | None:
    if v is None or v is False or v == "":
        return None
    s = _str(v, path)
    host, sep, port = s.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(path, f"expected host:port like 127.0.0.1:9108, got {s!r}")
    return s


class _Nested:
    """A mapping (or, with `many`, a non-empty list of mappings) validated by a sub-schema."""

    def __init__(self, schema: Mapping[str, Key], many: bool = False) -> None:
        self.schema = schema
        self.many = many
        self.__name__ = "list" if many else "section"

    def __call__(self, v: Any, path: str) -> Any:
        if not self.many:
            return _validate(v, self.schema, path)
        if not isinstance(v, list) or not v:
            raise ConfigError(path, "expected a non-empty list")
        return [_validate(item, self.schema, f"{path}[{i}]") for i, item in enumerate(v)]


def _section(schema: Mapping[str, Key]) -> _Nested:
    return _Nested(schema)


def _list_of(schema: Mapping[str, Key]) -> _Nested:
    return _Nested(schema, many=True)


INPUT_SCHEMA: dict[str, Key] = {
    "id": Key(_input_id, required=True, doc="Name of the input: `event.dataset` and part of the index name."),
    "paths": Key(_nonempty_str_list, required=True, doc="Globs of the files to tail; `**` matches any depth."),
    "exclude": Key(_str_list, [], "Globs of paths to skip (a pattern without `/` matches the file name)."),
    "format": Key(
        _str,
        "plain",
        "`plain`, `json`, `logfmt`, `python`, or a layout: Python logging (`%(asctime)s ...`), "
        "dissect (`%{field} ...`) or LogPAI (`<Date> <Time> <Level>: <Content>`).",
    ),
    "timezone": Key(_opt_str, None, "Zone of times written without one (IANA name; default: the host's)."),
    "multiline": Key(
        lambda v, p: _multiline(v, p),
        "auto",
        "`auto` (Python tracebacks and Java stack traces are one event), `none`, or "
        "{start: REGEX, max_lines: 500, max_bytes: 1MiB, timeout: 2s}.",
    ),
    "json_root": Key(_bool, False, "json: put the other keys at the root instead of under `json`."),
    "progress": Key(
        _choice("last", "all", "drop"),
        "last",
        "A line redrawn with `\\r` (progress bars): keep the text after the last `\\r`, `all` of it, or `drop` it.",
    ),
    "metrics": Key(
        lambda v, p: _metrics(v, p),
        "auto",
        "`key=value` / `key: value` model metrics into `metrics.<name>`: `auto`, `none`, or "
        "{names: [...], aliases: {logged: canonical}} (added to the built-in tables).",
    ),
    "predictions": Key(
        lambda v, p: _predictions(v, p),
        None,
        "json: prediction records {label: FIELD, prediction: FIELD, score: FIELD, positive: VALUE}.",
    ),
    "path_fields": Key(
        _opt_str,
        None,
        "A glob with `{name}` captures (`/srv/models/{model}/{run}/**`): a file's captures become its `labels`.",
    ),
    "source": Key(
        _opt_str,
        None,
        "What the anomaly counters call a file's events: a template over the captures (`{model}/{run}`).",
    ),
    "index": Key(_index_pattern, None, "Index pattern for this input only (default: the output's)."),
    "max_line_bytes": Key(_size, "1MiB", "Longer lines are truncated, tagged `truncated`, their length kept."),
    "start_at": Key(_choice("beginning", "end"), "beginning", "Where to start in files found at the first start."),
    "scan_interval": Key(_duration, "10s", "Rescan of the globs; covers events the kernel dropped."),
    "fingerprint_bytes": Key(_size, "1KiB", "How many first bytes of a file identify it beside device and inode."),
    "close_inactive": Key(
        _duration,
        "5m",
        "Close a file that has not grown for this long; reopened when it changes. A last line still "
        "without newline by then is shipped as it is, tagged `incomplete`.",
    ),
    "ignore_older": Key(_duration, None, "Files found with no change for this long are skipped to their end."),
    "close_removed": Key(
        _duration, "5s", "A file deleted or renamed out of the globs is read to its end, closed after this long idle."
    ),
    "clean_removed_after": Key(_duration, "1h", "Forget the registry entry of a file gone for this long."),
    "rotated_paths": Key(
        _str_list, [], "Globs of rotated copies (copytruncate): read to their end before a truncated file restarts."
    ),
}

TLS_SCHEMA: dict[str, Key] = {
    "ca_file": Key(_opt_str, None, "CA certificate (PEM) that signed the cluster's certificate."),
    "verify": Key(_bool, True, "Verify the server certificate; false only by explicit choice."),
    "cert_file": Key(_opt_str, None, "Client certificate for mutual TLS."),
    "key_file": Key(_opt_str, None, "Client key for mutual TLS."),
}

ES_SCHEMA: dict[str, Key] = {
    "hosts": Key(_nonempty_str_list, ["http://127.0.0.1:9200"], "Elasticsearch nodes (round robin, failover)."),
    "index": Key(
        _index_pattern, "shipper-logs-{input}-%Y.%m.%d", "Index name pattern: {input} and the event's UTC date."
    ),
    "username": Key(_opt_str, None, "Basic auth user."),
    "password": Key(_opt_str, None, "Basic auth password (use ${ENV_VAR})."),
    "password_file": Key(_opt_str, None, "File holding the basic auth password."),
    "api_key": Key(_opt_str, None, "API key (the base64 'encoded' value)."),
    "bearer_token": Key(_opt_str, None, "Bearer (service) token."),
    "tls": Key(_section(TLS_SCHEMA), None, "TLS settings."),
    "request_timeout": Key(_duration, "60s", "Timeout of one bulk request."),
    "bulk_max_bytes": Key(
        _size,
        "3MiB",
        "A bulk request is sent when its body reaches this size (the default: two in flight fill three quarters "
        "of max_inflight_bytes, the rest is parsed ahead; fewer, larger requests cost less CPU a line).",
    ),
    "bulk_max_events": Key(_pos_int, 20000, "... or this many events."),
    "flush_interval": Key(_duration, "250ms", "... or when its oldest event waited this long."),
    "max_inflight_requests": Key(_pos_int, 2, "Bulk requests in flight at once."),
    "backoff_initial": Key(_duration, "100ms", "First retry delay (doubles, with jitter)."),
    "backoff_max": Key(_duration, "30s", "Longest retry delay; retries never give up."),
    "template": Key(_bool, True, "Install the index template for shipper-logs-* at startup."),
    "compression": Key(_choice("none", "gzip"), "none", "Compress bulk bodies (gzip level 1, off the event loop)."),
    "sniff": Key(_bool, False, "Discover the cluster's other nodes at start and after a node failure."),
}

DLQ_SCHEMA: dict[str, Key] = {
    "max_bytes": Key(_size, "1GiB", "When the dead-letter queue is this big, refused events are held, not dropped."),
}

OUTPUT_SCHEMA: dict[str, Key] = {
    "elasticsearch": Key(_section(ES_SCHEMA), None, "The Elasticsearch output."),
}

WATCH_SCHEMA: dict[str, Key] = {
    "mode": Key(_choice("inotify", "poll"), "inotify", "`poll` for network file systems, where inotify sees nothing."),
    "max_watches": Key(
        _pos_int, 8192, "Directories watched at most; the rest are polled (the kernel has a limit too)."
    ),
    "poll_interval": Key(_duration, "2s", "How often an open file with no change notification is checked."),
    "coalesce": Key(
        _duration,
        "100ms",
        "A file being written is woken by its change notifications at most this often: the writes "
        "within it are read, parsed and sent as one chunk instead of one per write (a steady writer "
        "otherwise wakes the agent every few ms, and each small chunk costs a read, a parse, a "
        "checkpoint entry and counters of its own: several times the CPU per line of a backfill). A "
        "file quiet for this long is read at its first notification, so a trickle waits for nothing; "
        "a stream waits at most this long more. 0ms: every notification wakes the reader.",
    ),
}

HTTP_SCHEMA: dict[str, Key] = {
    "listen": Key(_listen, "127.0.0.1:9108", "Address of /health, /ready, /metrics (null disables).", null_ok=True),
}


def _sigma(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 20:
        raise ConfigError(path, f"expected a number of standard deviations between 0 and 20, got {v!r}")
    return float(v)


def _nonneg_int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(path, f"expected an integer >= 0, got {v!r}")
    return v


def _webhook_url(v: Any, path: str) -> str:
    s = _str(v, path)
    if not re.match(r"^https?://[^/\s]+(/.*)?$", s):
        raise ConfigError(path, f"expected an http(s) URL, got {s!r}")
    return s


def _directions(v: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(v, dict):
        raise ConfigError(path, f"expected a mapping of signal pattern to up, down, both or off; got {v!r}")
    return [(_str(k, path), _choice("up", "down", "both", "off")(d, f"{path}.{k}")) for k, d in v.items()]


def _metrics_index(prefix: str) -> Callable[[Any, str], str]:
    def convert(v: Any, path: str) -> str:
        s = _index_pattern(v, path)
        if not s.startswith(prefix):
            raise ConfigError(path, f"must start with {prefix!r} (the index template shipper installs matches that)")
        return s

    return convert


WEBHOOK_SCHEMA: dict[str, Key] = {
    "webhook": Key(_webhook_url, required=True, doc="URL that each anomaly document (start, clear) is POSTed to."),
    "timeout": Key(_duration, "5s", "Timeout of one POST."),
    "retries": Key(_nonneg_int, 3, "Attempts after a failed one (with backoff); then the notification is dropped."),
}

ANOMALY_SCHEMA: dict[str, Key] = {
    "enabled": Key(_bool, True, "Per-source counters, window summaries and the k-sigma watch."),
    "window": Key(_duration, "10s", "Window length; windows follow the events' @timestamp."),
    "grace": Key(_duration, "5s", "A window closes this long after its end, so late events still count."),
    "history": Key(_pos_int, 60, "Closed windows each signal's mean and standard deviation are taken over."),
    "min_history": Key(_pos_int, 10, "Windows of history needed before a signal can alert."),
    "sigma": Key(_sigma, 3, "A value beyond mean +/- sigma standard deviations is anomalous."),
    "clear_sigma": Key(_sigma, 2, "An alert clears when the value is back within this many (hysteresis)."),
    "directions": Key(
        _directions, {}, "Signal pattern -> up, down, both or off, before the built-in table (see architecture.md)."
    ),
    "metrics_index": Key(
        _metrics_index("shipper-metrics"), "shipper-metrics-%Y.%m.%d", "Index of window summaries (UTC date)."
    ),
    "anomalies_index": Key(
        _metrics_index("shipper-anomalies"), "shipper-anomalies-%Y.%m.%d", "Index of anomaly events (UTC date)."
    ),
    "documents": Key(_bool, True, "Write window summaries and anomaly events to Elasticsearch."),
    "forget_after": Key(_duration, "10m", "Series and state of a source whose files are all gone go after this."),
    "notify": Key(_list_of(WEBHOOK_SCHEMA), None, "Webhooks: [{webhook: URL, timeout: 5s, retries: 3}]."),
    "notify_queue": Key(_pos_int, 1000, "Notifications queued per webhook at most; the oldest go first."),
}

ROOT_SCHEMA: dict[str, Key] = {
    "data_dir": Key(_str, "./data", "Registry, host id, lock and dead-letter queue live here."),
    "host_name": Key(_opt_str, None, "`host.name` on every event (default: the machine's name)."),
    "inputs": Key(_list_of(INPUT_SCHEMA), required=True, doc="The files to tail."),
    "output": Key(_section(OUTPUT_SCHEMA), None, "Where events go."),
    "http": Key(_section(HTTP_SCHEMA), None, "The agent's own HTTP listener."),
    "watch": Key(_section(WATCH_SCHEMA), None, "How changes are noticed."),
    "dlq": Key(_section(DLQ_SCHEMA), None, "The dead-letter queue in data_dir/dlq."),
    "error_classes": Key(
        lambda v, p: _error_classes(v, p),
        None,
        "More error classes {name: [keyword, ...]} (checked before the built-in ones; naming a "
        "built-in class adds keywords to it).",
    ),
    "anomaly": Key(_section(ANOMALY_SCHEMA), None, "Per-source counters and anomaly detection."),
    "max_open_files": Key(
        _pos_int,
        1024,
        "Files held open at once; more wait until others close. A new file is also opened (pinned) as "
        "soon as inotify reports it, so that a file renamed away before the next scan is still read: up "
        "to 256 such descriptors per input, until that scan takes them under this budget.",
    ),
    "parse_threads": Key(
        _nonneg_int,
        0,
        "Threads that parse chunks of 16 KiB or more off the event loop (the compiled parser, "
        "formats it compiles: plain, python and layouts), so that a second core parses while the "
        "loop sends; 0 (the default, or a single CPU): everything is parsed on the loop. Off by "
        "default: measured here it cost 15% more CPU a line and bought no speed (benchmarks/RESULTS.md).",
    ),
    "max_inflight_bytes": Key(
        _size,
        "8MiB",
        "Bulk bytes read but not yet acknowledged; readers wait above it. The default holds two "
        "default bulk requests in flight and a part of a third parsed ahead; more bought no speed, only memory.",
    ),
    "registry_flush_interval": Key(_duration, "1s", "How often acknowledged offsets are persisted."),
    "shutdown_timeout": Key(_duration, "30s", "How long SIGTERM waits for in-flight events to be acknowledged."),
    "log_level": Key(_choice("debug", "info", "warning", "error"), "info", "The agent's own log level."),
}


def _validate(raw: Any, schema: Mapping[str, Key], path: str) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, got {type(raw).__name__}")
    for k in raw:
        if k not in schema:
            import difflib  # only to word this error

            near = difflib.get_close_matches(str(k), list(schema), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(schema)}"
            raise ConfigError(_join(path, str(k)), f"unknown key{hint}")
    out: dict[str, Any] = {}
    for k, key in schema.items():
        p = _join(path, k)
        if k in raw and raw[k] is None and key.null_ok:
            out[k] = None
        elif k in raw and raw[k] is not None:
            out[k] = key.convert(raw[k], p)
        elif key.required:
            raise ConfigError(p, "is required")
        elif _is_section(key):
            out[k] = key.convert({}, p)
        elif key.default is None:
            out[k] = None
        else:
            out[k] = key.convert(key.default, p)
    return out


def _is_section(key: Key) -> bool:
    return isinstance(key.convert, _Nested) and not key.convert.many


def _join(path: str, k: str) -> str:
    return f"{path}.{k}" if path else k


# --- expansion --------------------------------------------------------------------------


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string (secrets stay out of the file)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(path, f"environment variable {name} is not set")

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand_env(v, env, _join(path, str(k))) for k, v in value.items()}
    return value


# --- the typed result ---------------------------------------------------------------------


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def _record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True)`` with a keyword-only ``__init__`` shared by the config's
    records (:func:`_keyword_init`): the generated ``__init__``s of these wide classes are
    compiled at every start (~11 M instructions, 1% of a ``run --once`` of a small file,
    for objects made once). Frozen, ``==``, ``repr`` (without the secrets), ``fields``,
    ``replace`` and ``asdict`` are dataclasses' as before; type checkers read the
    constructor as a frozen dataclass's with keyword-only fields."""
    out = dataclass(frozen=True, init=False)(cls)
    out.__init__ = _keyword_init  # type: ignore[method-assign]
    return out


def _keyword_init(self: Any, **values: Any) -> None:
    """What dataclass's ``__init__`` does, from ``fields(self)``: each field from its
    keyword argument, else its default (or default factory)."""
    for f in fields(self):
        if f.name in values:
            value = values.pop(f.name)
        elif f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            raise TypeError(f"{type(self).__name__}.__init__() missing keyword argument: {f.name!r}")
        object.__setattr__(self, f.name, value)
    if values:
        raise TypeError(f"{type(self).__name__}.__init__() got unexpected keyword arguments: {', '.join(values)}")


@_record
class InputConfig:
    """One input, validated (see ``ROOT_SCHEMA``)."""

    id: str
    paths: list[str]
    exclude: list[str]
    format: str
    timezone: str | None
    json_root: bool
    multiline: Any
    index: str
    max_line_bytes: int
    start_at: str
    scan_interval: float
    fingerprint_bytes: int
    close_inactive: float
    ignore_older: float | None
    clean_removed_after: float
    rotated_paths: list[str]
    close_removed: float = 5.0
    progress: str = "last"
    metrics: Any = "auto"
    predictions: dict[str, Any] | None = None
    path_fields: PathFields | None = None
    source: str | None = None
    error_classes: dict[str, list[str]] | None = None  # the top-level table, for the parser

    def parser_options(self) -> dict[str, Any]:
        """What the input's config says to the parser: the one mapping the agent's readers
        and `shipper parse` both use, so that `parse` prints what the agent would send."""
        return {
            "index_pattern": self.index,
            "max_line_bytes": self.max_line_bytes,
            "format": self.format,
            "timezone": self.timezone,
            "json_root": self.json_root,
            "multiline": self.multiline,
            "progress": self.progress,
            "metrics": self.metrics,
            "error_classes": self.error_classes,
            "predictions": self.predictions,
        }


@_record
class ElasticsearchConfig:
    """``output.elasticsearch``, validated."""

    hosts: list[str]
    index: str
    username: str | None
    password: str | None = field(repr=False)
    api_key: str | None = field(repr=False)
    bearer_token: str | None = field(repr=False)
    ca_file: str | None
    verify: bool
    cert_file: str | None
    key_file: str | None
    request_timeout: float
    bulk_max_bytes: int
    bulk_max_events: int
    flush_interval: float
    max_inflight_requests: int
    backoff_initial: float
    backoff_max: float
    template: bool
    compression: str
    sniff: bool


@_record
class AnomalyConfig:
    """``anomaly``, validated."""

    enabled: bool = True
    window: float = 10.0
    grace: float = 5.0
    history: int = 60
    min_history: int = 10
    sigma: float = 3.0
    clear_sigma: float = 2.0
    directions: tuple[tuple[str, str], ...] = ()
    metrics_index: str = "shipper-metrics-%Y.%m.%d"
    anomalies_index: str = "shipper-anomalies-%Y.%m.%d"
    documents: bool = True
    forget_after: float = 600.0
    notify: tuple[tuple[str, float, int], ...] = ()  # (url, timeout, retries)
    notify_queue: int = 1000


@_record
class Config:
    """The whole config, validated (``load``, ``from_dict``)."""

    data_dir: Path
    host_name: str
    inputs: list[InputConfig]
    elasticsearch: ElasticsearchConfig
    http_listen: str | None
    watch_mode: str
    max_watches: int
    poll_interval: float
    max_inflight_bytes: int
    max_open_files: int
    registry_flush_interval: float
    shutdown_timeout: float
    log_level: str
    dlq_max_bytes: int
    source: Path | None = None
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    watch_coalesce: float = 0.1
    parse_threads: int = 0


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raises ConfigError naming the key on any problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("", f"cannot read config file {p}: {e.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        try:  # the pure-Python loader's complaint quotes the line and marks the column
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError("", f"{p} is not valid YAML: {e}") from None
    cfg = from_dict(raw, env if env is not None else os.environ, base=p.parent)
    return Config(**{**cfg.__dict__, "source": p})


def from_dict(raw: Any, env: Mapping[str, str] | None = None, base: Path | None = None) -> Config:
    """Validate an already-parsed config mapping (relative paths resolve against `base`)."""
    raw = expand_env(raw, env if env is not None else os.environ)
    v = _validate(raw, ROOT_SCHEMA, "")
    es = v["output"]["elasticsearch"]
    tls = es["tls"]
    password = es["password"]
    if es["password_file"]:
        try:
            password = Path(es["password_file"]).read_text().strip()
        except OSError as e:
            raise ConfigError("output.elasticsearch.password_file", f"cannot read: {e.strerror}") from None
    if password and not es["username"]:
        raise ConfigError("output.elasticsearch.username", "is required when a password is given")
    if es["username"] and not password:
        raise ConfigError("output.elasticsearch.password", "is required when a username is given")
    methods = [k for k in ("username", "api_key", "bearer_token") if es[k]]
    if len(methods) > 1:
        raise ConfigError(
            f"output.elasticsearch.{methods[1]}", f"choose one authentication method, not {' and '.join(methods)}"
        )
    for i, h in enumerate(es["hosts"]):
        if not re.match(r"^https?://[^/\s]+(/.*)?$", h):
            raise ConfigError(
                f"output.elasticsearch.hosts[{i}]", f"expected a URL like http://127.0.0.1:9200, got {h!r}"
            )
    ids = [inp["id"] for inp in v["inputs"]]
    for i, inp_id in enumerate(ids):
        if ids.index(inp_id) != i:
            raise ConfigError(f"inputs[{i}].id", f"duplicate input id {inp_id!r}")
    base = base or Path.cwd()
    data_dir = Path(v["data_dir"])
    if not data_dir.is_absolute():
        data_dir = (base / data_dir).resolve()
    inputs = [
        InputConfig(
            id=inp["id"],
            paths=[_abs_glob(g, base) for g in inp["paths"]],
            exclude=inp["exclude"],
            format=inp["format"],
            timezone=inp["timezone"],
            json_root=inp["json_root"],
            multiline=inp["multiline"],
            index=(inp["index"] or es["index"]).replace("{input}", inp["id"]),
            max_line_bytes=inp["max_line_bytes"],
            start_at=inp["start_at"],
            scan_interval=inp["scan_interval"],
            fingerprint_bytes=inp["fingerprint_bytes"],
            close_inactive=inp["close_inactive"],
            ignore_older=inp["ignore_older"],
            clean_removed_after=inp["clean_removed_after"],
            close_removed=inp["close_removed"],
            rotated_paths=[_abs_glob(g, base) for g in inp["rotated_paths"]],
            progress=inp["progress"],
            metrics=inp["metrics"],
            predictions=inp["predictions"],
            path_fields=_path_fields(inp, base, f"inputs[{i}]"),
            source=inp["source"],
            error_classes=v["error_classes"],
        )
        for i, inp in enumerate(v["inputs"])
    ]
    for i, inp in enumerate(inputs):
        _check_format(inp, f"inputs[{i}]")
    return Config(
        data_dir=data_dir,
        host_name=v["host_name"] or socket.gethostname(),
        inputs=inputs,
        elasticsearch=ElasticsearchConfig(
            hosts=es["hosts"],
            index=es["index"],
            username=es["username"],
            password=password,
            api_key=es["api_key"],
            bearer_token=es["bearer_token"],
            ca_file=tls["ca_file"],
            verify=tls["verify"],
            cert_file=tls["cert_file"],
            key_file=tls["key_file"],
            request_timeout=es["request_timeout"],
            bulk_max_bytes=es["bulk_max_bytes"],
            bulk_max_events=es["bulk_max_events"],
            flush_interval=es["flush_interval"],
            max_inflight_requests=es["max_inflight_requests"],
            backoff_initial=es["backoff_initial"],
            backoff_max=es["backoff_max"],
            template=es["template"],
            compression=es["compression"],
            sniff=es["sniff"],
        ),
        http_listen=v["http"]["listen"],
        watch_mode=v["watch"]["mode"],
        max_watches=v["watch"]["max_watches"],
        poll_interval=v["watch"]["poll_interval"],
        watch_coalesce=v["watch"]["coalesce"],
        max_inflight_bytes=v["max_inflight_bytes"],
        max_open_files=v["max_open_files"],
        parse_threads=v["parse_threads"],
        registry_flush_interval=v["registry_flush_interval"],
        shutdown_timeout=v["shutdown_timeout"],
        log_level=v["log_level"],
        dlq_max_bytes=v["dlq"]["max_bytes"],
        anomaly=_anomaly(v["anomaly"]),
    )


def _anomaly(a: dict[str, Any]) -> AnomalyConfig:
    if a["clear_sigma"] > a["sigma"]:
        raise ConfigError("anomaly.clear_sigma", f"must not exceed anomaly.sigma ({a['sigma']}), or alerts never clear")
    if a["window"] < 0.1:
        raise ConfigError("anomaly.window", "must be at least 100ms")
    return AnomalyConfig(
        enabled=a["enabled"],
        window=a["window"],
        grace=a["grace"],
        history=a["history"],
        min_history=a["min_history"],
        sigma=a["sigma"],
        clear_sigma=a["clear_sigma"],
        directions=tuple(a["directions"]),
        metrics_index=a["metrics_index"],
        anomalies_index=a["anomalies_index"],
        documents=a["documents"],
        forget_after=a["forget_after"],
        notify=tuple((n["webhook"], n["timeout"], n["retries"]) for n in a["notify"] or ()),
        notify_queue=a["notify_queue"],
    )


def _check_format(inp: InputConfig, path: str) -> None:
    """The parser compiles the format (and knows the zone): its complaint, with the key path."""
    from _fastparse import Parser

    fmt = inp.format
    if fmt not in FORMATS and not any(m in fmt for m in ("%(", "%{", "<")):
        raise ConfigError(
            f"{path}.format",
            f"expected one of {', '.join(FORMATS)} or a layout "
            f"(%(asctime)s ..., %{{field}} ..., <Field> ...), got {fmt!r}",
        )
    try:
        Parser(
            input_id=inp.id,
            path="/check",
            host_name="check",
            id_prefix="check",
            index_pattern=inp.index,
            format=fmt,
            timezone=inp.timezone,
            json_root=inp.json_root,
            metrics=inp.metrics,
            predictions=inp.predictions,
        )
    except (TypeError, ValueError) as e:
        key = "timezone" if inp.timezone and "zone" in str(e).lower() else "format"
        raise ConfigError(f"{path}.{key}", str(e)) from None


def _path_fields(inp: dict[str, Any], base: Path, path: str) -> PathFields | None:
    """``path_fields`` compiled (relative to the config's directory), ``source`` checked against it."""
    pf = None
    if inp["path_fields"]:
        try:
            pf = PathFields(_abs_glob(inp["path_fields"], base))
        except ValueError as e:
            raise ConfigError(f"{path}.path_fields", str(e)) from None
    if inp["source"]:
        names = _CAPTURE.findall(inp["source"])
        missing = [n for n in names if pf is None or n not in pf.names]
        if missing:
            raise ConfigError(f"{path}.source", f"{{{missing[0]}}} is not a capture of path_fields")
    if inp["format"] != "json" and inp["predictions"]:
        raise ConfigError(f"{path}.predictions", "needs format: json")
    return pf


def _abs_glob(g: str, base: Path) -> str:
    g = os.path.expanduser(g)
    return g if os.path.isabs(g) else str(base / g)


def reference() -> str:
    """The config reference in Markdown, generated from the schema."""
    lines = [
        "# Config reference",
        "",
        "Generated by `shipper config-reference` from the schema in `shipper/config.py`.",
        "Durations are `<n>ms|s|m|h`; sizes `<n>KiB|MiB|GiB`; "
        "`${VAR}` and `${VAR:-default}` expand from the environment.",
        "",
    ]

    def walk(schema: Mapping[str, Key], prefix: str) -> None:
        for k, key in schema.items():
            name = f"{prefix}{k}"
            nested = key.convert
            if isinstance(nested, _Nested) and not nested.many:
                lines.append(f"| `{name}` | section | {key.doc} |")
                walk(nested.schema, name + ".")
            elif isinstance(nested, _Nested):
                lines.append(f"| `{name}` | list, required | {key.doc} |")
                walk(nested.schema, name + "[].")
            else:
                default = (
                    "required" if key.required else f"`{_show(key.default)}`" if key.default is not None else "unset"
                )
                lines.append(f"| `{name}` | {default} | {key.doc} |")

    lines += ["| key | default | meaning |", "| --- | --- | --- |"]
    walk(ROOT_SCHEMA, "")
    return "\n".join(lines) + "\n"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(f'"{x}"' for x in v) + "]"
    return str(v)
