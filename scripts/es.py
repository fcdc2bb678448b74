#!/usr/bin/env python3
"""Fetch, start and stop a real Elasticsearch for development, tests and CI.

The official minimal distribution (`org.elasticsearch.distribution.integ-test-zip`, from
Maven Central) is fetched once with Maven and unpacked into a git-ignored cache
(`.cache/es/`, or `SHIPPER_ES_CACHE`). Named servers keep tests from fighting over one:

    plain   :9201  security off, the tests' server
    demo    :9200  security off, the README's demo
    secure  :9202  HTTPS (own CA, made by elasticsearch-certutil) and the file realm
    trio    :9211-9213  three nodes, cluster `shipper-trio`
    NAME --port P  any other name: a throwaway single node (transport port P+100)

Each server lives in `.cache/es/servers/NAME/` (config/, data/, logs/, tmp/, es.pid) and
is described by its `server.json` (urls, ports, pids, auth). Servers are detached: they
outlive this script and are found again through their pid files and command lines.
Elasticsearch refuses to run as root, so as root each server runs as `nobody` (setpriv),
with its own directories chowned to it.

    python scripts/es.py fetch
    python scripts/es.py start NAME [--port P] [--transport-port T] [--fresh] [--timeout S]
    python scripts/es.py stop NAME | kill NAME [--node I] | stop-all | status | info NAME

`start` prints the server.json as one line of JSON on stdout; progress goes to stderr.
From Python (tests/conftest.py puts scripts/ on sys.path): `import es`, then
start(name, port=None, fresh=False) -> dict, stop(name), kill(name), info(name) -> dict|None,
kill_node(name, i) / start_node(name, i) for one node of a cluster, status(), stop_all(),
and add_user / add_role / service_token for the secure server. Failures raise ESError.

Environment: SHIPPER_ES_VERSION, SHIPPER_ES_CACHE, SHIPPER_ES_ADMIN_PASSWORD,
SHIPPER_ES_START_TIMEOUT (seconds, default 120), SHIPPER_ES_MAVEN_REPO (a Maven local
repository to fetch into instead of ~/.m2/repository), SHIPPER_ES_JAVA_OPTS (added to the
servers' JVM options), ES_JAVA_HOME (default: the JDK of the `java` on PATH; the minimal
distribution bundles none).

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VERSION = os.environ.get("SHIPPER_ES_VERSION", "8.19.21")
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
ADMIN_USER = "admin"
ADMIN_PASSWORD = os.environ.get("SHIPPER_ES_ADMIN_PASSWORD", "shipper-admin-pw")
NAMED = {"plain": 9201, "demo": 9200, "secure": 9202, "trio": 9211}
TRIO_NODES = 3
TIMEOUT = float(os.environ.get("SHIPPER_ES_START_TIMEOUT", "120"))
STOP_TIMEOUT = 30.0
SHARED_CACHE = Path("/var/tmp/shipper-es")
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


class ESError(RuntimeError):
    """The server could not be fetched, started or found; the message says why."""


def say(msg: str) -> None:
    """Progress on stderr, so that stdout carries only the JSON a caller parses."""
    print(f"es: {msg}", file=sys.stderr, flush=True)


def _root() -> bool:
    return os.geteuid() == 0


def _unreachable_parent(path: Path) -> Path | None:
    """The first existing directory on the way to `path` that other users cannot enter."""
    for p in reversed([path, *path.parents]):
        if p.exists() and p.is_dir() and not os.stat(p).st_mode & 0o001:
            return p
    return None


def _cache() -> Path:
    """`.cache/es` in the repo, or SHIPPER_ES_CACHE.

    As root the servers run as `nobody`, which must be able to walk down to them. A clone
    under a 0700 directory (mktemp -d, /root) cannot be reached, so then a shared cache in
    /var/tmp is used instead of failing; outside the repo a 0700 parent is an error.
    """
    if os.environ.get("SHIPPER_ES_CACHE"):
        return Path(os.environ["SHIPPER_ES_CACHE"]).resolve()
    if _root() and _unreachable_parent(ROOT) is not None:
        return SHARED_CACHE
    return ROOT / ".cache" / "es"


CACHE = _cache()
HOME = CACHE / f"elasticsearch-{VERSION}"
SERVERS = CACHE / "servers"
LOCKS = CACHE / "locks"


# --- small helpers ---------------------------------------------------------------------------


def _ensure_dir(path: Path) -> None:
    """mkdir -p; as root, with the cache's directories on the way opened to `nobody`.

    The umask of a CI shell may be 077, but Elasticsearch, running as nobody, must still
    walk through the cache to the distribution and to its own directories.
    """
    path.mkdir(parents=True, exist_ok=True)
    if not _root():
        return
    top = ROOT / ".cache" if CACHE == ROOT / ".cache" / "es" else CACHE  # the topmost directory that is ours
    for p in [path, *path.parents]:
        if p != top and top not in p.parents:
            break
        mode = os.stat(p).st_mode
        if mode & 0o005 != 0o005:
            os.chmod(p, mode | 0o755)


_held: dict[str, int] = {}


@contextlib.contextmanager
def _lock(key: str) -> Iterator[None]:
    """An exclusive inter-process lock per server (and one for fetching).

    Two pytest processes, or a test and a developer, may start the same server at once;
    the second must wait and then find it running, not start a twin on the same ports.
    Reentrant within one process (start() stops before it starts).
    """
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    _ensure_dir(LOCKS)
    fd = os.open(LOCKS / f"{key}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another es.py working on {key}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the lock


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the servers as: `nobody` when we are root, else ourselves (None)."""
    if not _root():
        return None
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        raise ESError("running as root needs a user `nobody` to run Elasticsearch as (it refuses root)") from None
    for group in ("nogroup", "nobody"):  # Debian says nogroup, Red Hat nobody
        try:
            return uid, grp.getgrnam(group).gr_gid
        except KeyError:
            pass
    return uid, pwd.getpwnam("nobody").pw_gid


def _chown_tree(path: Path, ids: tuple[int, int] | None) -> None:
    if ids is None or not path.exists():
        return
    os.lchown(path, *ids)
    for dirpath, dirnames, filenames in os.walk(path):
        for entry in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, entry), *ids)


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return f"(no log at {path})"
    return "\n".join(line[:600] for line in lines) or f"({path} is empty)"


# --- fetch ------------------------------------------------------------------------------------


def _maven_repos() -> list[Path]:
    """Where `mvn dependency:get` puts the zip: SHIPPER_ES_MAVEN_REPO, else ~/.m2/repository.

    Maven takes the home directory from the password database, not $HOME, so both are tried.
    """
    if os.environ.get("SHIPPER_ES_MAVEN_REPO"):
        return [Path(os.environ["SHIPPER_ES_MAVEN_REPO"]).resolve()]
    homes = [Path(pwd.getpwuid(os.getuid()).pw_dir), Path.home()]
    return list(dict.fromkeys(h / ".m2" / "repository" for h in homes))


def _zip_in(repo: Path) -> Path:
    group, artifact = ARTIFACT.split(":")[:2]
    return repo.joinpath(*group.split("."), artifact, VERSION, f"{artifact}-{VERSION}.zip")


def _download() -> Path:
    """The distribution's zip in the local Maven repository, fetched by Maven when missing."""
    for repo in _maven_repos():
        if _zip_in(repo).is_file():
            return _zip_in(repo)
    if not shutil.which("mvn"):
        raise ESError("Maven (mvn) is needed to fetch Elasticsearch once: apt-get install maven")
    say(f"fetching {ARTIFACT} from Maven Central (~107 MB, once)")
    cmd = ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={ARTIFACT}", "-Dtransitive=false"]
    if os.environ.get("SHIPPER_ES_MAVEN_REPO"):
        cmd.append(f"-Dmaven.repo.local={_maven_repos()[0]}")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        out = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
        raise ESError(f"fetching {ARTIFACT} failed (is SHIPPER_ES_VERSION={VERSION} published?):\n{out}")
    for repo in _maven_repos():
        if _zip_in(repo).is_file():
            say(f"fetched in {time.monotonic() - t0:.0f}s")
            return _zip_in(repo)
    # a settings.xml may move the local repository: ask Maven where it is
    r = subprocess.run(
        ["mvn", "-q", "-B", "help:evaluate", "-Dexpression=settings.localRepository", "-DforceStdout"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    found = _zip_in(Path(r.stdout.strip()))
    if r.returncode == 0 and found.is_file():
        return found
    raise ESError(f"mvn succeeded but {ARTIFACT} is not in {', '.join(map(str, _maven_repos()))}")


def _unpacked() -> bool:
    return (HOME / "bin" / "elasticsearch").is_file()


def fetch() -> Path:
    """The unpacked distribution (downloaded with Maven and unpacked once, then cached).

    Unpacks into a temporary directory and renames it into place, so an interrupted
    unpack never leaves a half distribution behind that later runs would trust.
    """
    if _unpacked():
        return HOME
    with _lock("fetch"):
        if _unpacked():  # another process did it while we waited
            return HOME
        for attempt in (1, 2):
            zip_path = _download()
            try:
                _unpack(zip_path)
                break
            except (zipfile.BadZipFile, zlib.error) as e:
                if attempt == 2:
                    raise ESError(f"{zip_path} is not a valid zip ({e}); delete it and fetch again") from None
                say(f"{zip_path} is damaged ({e}); fetching it again")
                zip_path.unlink()
    say(f"unpacked into {HOME}")
    return HOME


def _unpack(zip_path: Path) -> None:
    _ensure_dir(CACHE)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=CACHE))
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(tmp)
            for member in z.infolist():  # zipfile drops the modes: restore them (bin/ scripts)
                mode = (member.external_attr >> 16) & 0o777
                if mode:
                    (tmp / member.filename).chmod(mode)
        top = tmp / f"elasticsearch-{VERSION}"
        if not (top / "bin" / "elasticsearch").is_file():
            raise ESError(f"{zip_path} holds no elasticsearch-{VERSION}/bin/elasticsearch")
        _readable_by_all(top)
        if HOME.exists():
            shutil.rmtree(HOME)
        top.rename(HOME)
    except OSError as e:
        raise ESError(f"unpacking {zip_path} into {CACHE} failed: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _readable_by_all(path: Path) -> None:
    """Directories 755 and files a+r, whatever the umask: `nobody` runs the distribution."""
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            mode = os.stat(p).st_mode
            os.chmod(p, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def _java_home() -> str:
    """ES_JAVA_HOME, else the JDK of `java` on PATH (/usr/bin/java -> /usr/lib/jvm/...).

    bin/elasticsearch only looks at ES_JAVA_HOME (JAVA_HOME is ignored with a warning) and
    the integ-test-zip has no bundled JDK, so it must always be set.
    """
    home = os.environ.get("ES_JAVA_HOME")
    if not home:
        java = shutil.which("java")
        if not java:
            raise ESError("Java 17+ is needed (no bundled JDK): apt-get install openjdk-17-jre-headless")
        home = str(Path(os.path.realpath(java)).parent.parent)
    if not os.access(os.path.join(home, "bin", "java"), os.X_OK):
        raise ESError(f"no executable bin/java under ES_JAVA_HOME={home}")
    return home


# --- servers: layout, state ---------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_RE, name):
        raise ESError(f"bad server name {name!r}: letters, digits, '.', '_' and '-' only")


def _layout(name: str, port: int, transport: int) -> list[dict[str, Any]]:
    """The nodes of server `name`: their names, ports and directories."""
    base = SERVERS / name
    count = TRIO_NODES if name == "trio" else 1
    nodes = []
    for i in range(count):
        node = f"{name}-{i}" if count > 1 else name
        d = base / node if count > 1 else base
        nodes.append(
            {
                "name": node,
                "http_port": port + i,
                "transport_port": transport + i,
                "dir": str(d),
                "pid_file": str(d / "es.pid"),
                "log": str(d / "logs" / "stdout.log"),
            }
        )
    return nodes


def info(name: str) -> dict[str, Any] | None:
    """The server's server.json (whether or not it is running), or None if never started."""
    try:
        data = json.loads((SERVERS / name / "server.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_info(name: str, srv: dict[str, Any]) -> None:
    path = SERVERS / name / "server.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(srv, indent=None) + "\n")
    tmp.replace(path)  # readers never see half a file


def _proc_state(pid: int) -> tuple[str, bytes] | None:
    """(state letter, command line) of a live process, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0], cmd


def _ours(pid: int, under: str) -> bool:
    """Is `pid` alive, not a zombie, and a process of a server whose directory is `under`?

    Every stage of a server names its directory in a telling argument: the spawner, setpriv,
    the shell script and the launcher JVM carry `-p DIR/es.pid`, the server JVM carries
    `-Djava.io.tmpdir=DIR/tmp`. A stale pid file whose pid was reused by another process,
    or a `tail -f DIR/logs/...` of a developer, is never mistaken for the server.
    """
    st = _proc_state(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    args = st[1].decode(errors="replace").split("\0")
    prefix = f"{under}/"
    for prev, arg in zip(["", *args], args, strict=False):
        if prev == "-p" and arg.startswith(prefix) and arg.endswith("/es.pid"):
            return True
        if arg.startswith(f"-Djava.io.tmpdir={prefix}") and arg.endswith("/tmp"):
            return True
    return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _pids(name: str, node: str | None = None) -> list[int]:
    """Live processes of server `name` (or of one of its nodes), found by pid files.

    Candidates are the pids in server.json (the launchers) and in the es.pid files (the
    server JVMs); a scan of /proc for the server's directory catches the rest (a server
    whose server.json was deleted, a JVM whose launcher was killed).
    """
    base = SERVERS / name
    under = str(base / node if node and node != name else base)
    candidates: set[int] = set()
    srv = info(name) or {}
    candidates.update(p for p in srv.get("pids", []) if isinstance(p, int))
    for pid_file in [base / "es.pid", *base.glob("*/es.pid")]:
        pid = _read_pid(pid_file)
        if pid:
            candidates.add(pid)
    candidates.update(_scan(under))
    return sorted(p for p in candidates if p > 1 and p != os.getpid() and _ours(p, under))


def _scan(under: str) -> list[int]:
    """Every process of a server under the directory `under` (see _ours)."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _ours(int(e), under)]


# --- HTTP -----------------------------------------------------------------------------------------


def _get(srv: dict[str, Any], path: str, node: int = 0, timeout: float = 5) -> dict[str, Any]:
    """GET a JSON answer from the server, with its CA and basic auth when it has them."""
    req = urllib.request.Request(srv["urls"][node] + path)
    ctx = ssl.create_default_context(cafile=srv["ca_file"]) if srv.get("ca_file") else None
    if srv.get("username"):
        token = base64.b64encode(f"{srv['username']}:{srv['password']}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        data = json.loads(r.read())
    return data if isinstance(data, dict) else {}


def healthy(srv: dict[str, Any]) -> bool:
    """Green or yellow with every node joined (a lone node's replicas keep it yellow)."""
    want = len(srv.get("nodes") or srv.get("urls") or [0])
    try:
        h = _get(srv, f"/_cluster/health?wait_for_status=yellow&wait_for_nodes={want}&timeout=1s")
    except (OSError, ValueError, http.client.HTTPException):  # URLError, HTTPError, SSL are OSError
        return False
    return h.get("status") in ("green", "yellow") and h.get("number_of_nodes") == want


# --- ports ------------------------------------------------------------------------------------------


def _listener(port: int) -> str | None:
    """Who listens on TCP `port` (any address), for an error message; None if nobody."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}")[8:-1] in inodes for fd in fds):
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in cmd if w]
        es = [w for w in words if w.startswith(("-Des.path.conf=", "-Djava.io.tmpdir=", "-Des.path.home="))]
        return f"pid {entry} ({'an Elasticsearch: ' + ' '.join(es) if es else ' '.join(words)[:200]})"
    return "a process this user cannot see"


def _port_busy(port: int) -> str | None:
    """Why `port` on 127.0.0.1 cannot be bound, or None if it is free."""
    who = _listener(port)
    if who:
        return who
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return str(e)
    return None


# --- start -----------------------------------------------------------------------------------------


def _settings(name: str, node: dict[str, Any], nodes: list[dict[str, Any]], secure: bool) -> dict[str, Any]:
    """elasticsearch.yml for one node."""
    d = Path(node["dir"])
    s: dict[str, Any] = {
        "cluster.name": f"shipper-{name}",
        "node.name": node["name"],
        "network.host": "127.0.0.1",  # loopback only: also keeps the bootstrap checks lenient
        "http.port": node["http_port"],
        "transport.port": node["transport_port"],
        "path.data": str(d / "data"),
        "path.logs": str(d / "logs"),
        # a nearly full shared disk must not turn the test indices read-only
        "cluster.routing.allocation.disk.threshold_enabled": False,
        "action.destructive_requires_name": False,  # tests clean up with wildcards
        # a server shared by several test sessions (helpers, an interrupted run that never
        # cleaned up) reached the default 1,000 shards (each test index counts its unassigned
        # replica) and refused every new index: tests then time out far from the cause
        "cluster.max_shards_per_node": 5000,
        "xpack.security.enabled": secure,
    }
    if len(nodes) > 1:
        s["discovery.seed_hosts"] = [f"127.0.0.1:{n['transport_port']}" for n in nodes]
        s["cluster.initial_master_nodes"] = [n["name"] for n in nodes]
    else:
        s["discovery.type"] = "single-node"
    if secure:
        # The TLS files must live in the config directory: the server's entitlements let it
        # read nothing else. Transport TLS is not needed on loopback (the bootstrap check only
        # warns there), but it is on as in any real secured cluster, which keeps the log clean.
        for layer in ("http", "transport"):
            s[f"xpack.security.{layer}.ssl.enabled"] = True
            s[f"xpack.security.{layer}.ssl.certificate"] = "certs/node.crt"
            s[f"xpack.security.{layer}.ssl.key"] = "certs/node.key"
            s[f"xpack.security.{layer}.ssl.certificate_authorities"] = ["certs/ca.crt"]
        s["xpack.security.transport.ssl.verification_mode"] = "certificate"
        s["xpack.security.authc.realms.file.file1.order"] = 0
    return s


def _write_config(home: Path, conf: Path, settings: dict[str, Any]) -> None:
    """The distribution's config, with our elasticsearch.yml and smaller GC logs.

    The stock jvm.options keeps 32 GC logs of 64 MB per node; on a shared disk 2 x 16 MB do.
    """
    if not conf.exists():
        shutil.copytree(home / "config", conf)
    (conf / "elasticsearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    jvm = conf / "jvm.options"
    text = jvm.read_text()
    jvm.write_text(re.sub(r"filecount=\d+,filesize=\d+m", "filecount=2,filesize=16m", text))


def _tool(home: Path, name: str, *args: str, conf: Path | None = None) -> str:
    """Run one of the distribution's CLI tools (as the caller: they only write files)."""
    env = {**os.environ, "ES_JAVA_HOME": _java_home()}
    env.pop("JAVA_HOME", None)
    if conf:
        env["ES_PATH_CONF"] = str(conf)
    r = subprocess.run(
        [str(home / "bin" / name), *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if r.returncode != 0:
        shown = " ".join("****" if prev == "-p" else a for prev, a in zip(("", *args), args, strict=False))
        raise ESError(f"{name} {shown} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def _make_certs(home: Path, certs: Path) -> dict[str, str]:
    """A CA and a node certificate for 127.0.0.1/localhost, made with certutil (PEM), once."""
    if not (certs / "node.crt").exists():
        certs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=certs.parent) as tmp:
            work = Path(tmp)
            days = ("--days", "3650")
            _tool(home, "elasticsearch-certutil", "ca", "--pem", "--silent", *days, "--out", str(work / "ca.zip"))
            with zipfile.ZipFile(work / "ca.zip") as z:
                z.extractall(work)
            ca = ("--ca-cert", str(work / "ca" / "ca.crt"), "--ca-key", str(work / "ca" / "ca.key"))
            san = ("--name", "node", "--ip", "127.0.0.1", "--dns", "localhost")
            out = ("--out", str(work / "node.zip"))
            _tool(home, "elasticsearch-certutil", "cert", "--pem", "--silent", *days, *ca, *san, *out)
            with zipfile.ZipFile(work / "node.zip") as z:
                z.extractall(work)
            for src in ("ca/ca.crt", "ca/ca.key", "node/node.crt", "node/node.key"):
                shutil.copy(work / src, certs / Path(src).name)
    return {"ca_file": str(certs / "ca.crt"), "ca_key": str(certs / "ca.key")}


def _file_user_exists(conf: Path, user: str) -> bool:
    try:
        return any(line.split(":", 1)[0] == user for line in (conf / "users").read_text().splitlines())
    except OSError:
        return False


def _add_admin(home: Path, conf: Path, old: dict[str, Any] | None) -> None:
    """The superuser of the file realm, with the current password."""
    if _file_user_exists(conf, ADMIN_USER):
        if old and old.get("password") == ADMIN_PASSWORD:
            return
        _tool(home, "elasticsearch-users", "userdel", ADMIN_USER, conf=conf)
    _tool(home, "elasticsearch-users", "useradd", ADMIN_USER, "-p", ADMIN_PASSWORD, "-r", "superuser", conf=conf)


# Run by _spawn(): launch the server in a new session, print its pid and exit at once. The
# server is thus re-parented to init, not a child of the caller: no zombie left in a pytest
# process that kills it, no ResourceWarning, no reaping of the caller's other children.
_SPAWN = r"""
import os, subprocess, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
p = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True)
print(p.pid)
"""


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
    """Start `cmd` detached (stdout and stderr to `log`); returns its pid."""
    r = subprocess.run(
        [sys.executable, "-I", "-c", _SPAWN, str(log), str(cwd), *cmd],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0 or not r.stdout.strip().isdigit():
        raise ESError(f"could not launch {' '.join(cmd)}:\n{r.stderr}")
    return int(r.stdout)


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _check_reachable(path: Path) -> None:
    bad = _unreachable_parent(path)
    if bad is not None:
        raise ESError(
            f"{bad} (mode {oct(os.stat(bad).st_mode & 0o777)}) cannot be entered by other users, but as root "
            f"the server runs as nobody and needs {path}. Run `chmod o+x {bad}`, or set SHIPPER_ES_CACHE "
            f"to a directory nobody can reach (e.g. {SHARED_CACHE})"
        )


def _check_access(ids: tuple[int, int], home: Path, base: Path) -> None:
    """As root: can `nobody` run the distribution and write the server's directory? Say why not.

    Mode bits of the parents are checked first for a precise message; then nobody itself
    tries, which also catches ACLs and noexec mounts. A distribution unpacked by an older
    script or by hand is made readable once before giving up.
    """
    _check_reachable(home)
    _check_reachable(base)
    test = 'test -x "$1/bin/elasticsearch" && test -r "$1/lib" && test -r "$1/modules" && test -w "$2"'
    probe = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", "sh", "-c", test, "-"]
    for attempt in (1, 2):
        if subprocess.run([*probe, str(home), str(base)], stdin=subprocess.DEVNULL).returncode == 0:
            return
        if attempt == 1:
            _readable_by_all(home)
    raise ESError(f"nobody cannot run {home}/bin/elasticsearch or write {base} (ACLs? a noexec mount?)")


def start(
    name: str,
    port: int | None = None,
    fresh: bool = False,
    *,
    transport_port: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Start server `name` and wait until it is healthy; returns its server.json.

    Idempotent: a running, healthy server on the asked ports is returned as it is. A dead
    or sick one is stopped and started again on its data; `fresh` wipes its data first.
    """
    _check_name(name)
    with _lock(name):
        return _start(name, port, fresh, transport_port, TIMEOUT if timeout is None else timeout)


def _start(name: str, port: int | None, fresh: bool, transport_port: int | None, timeout: float) -> dict[str, Any]:
    old = info(name)
    if old:
        old["nodes"] = _nodes_of(name, old)
    if old and old["nodes"] and not fresh:
        first = old["nodes"][0]
        if port in (None, first["http_port"]) and transport_port in (None, first["transport_port"]):
            alive = [bool(_pids(name, n["name"])) for n in old["nodes"]]
            if all(alive) and healthy(old):
                say(f"{name} is already running on {', '.join(old['urls'])}")
                return old
            if any(alive) and not all(alive):  # a killed node of a cluster: bring back just it
                missing = [n for n, up in zip(old["nodes"], alive, strict=True) if not up]
                return _restart_nodes(name, old, missing, timeout)
    _stop(name)

    port = port or NAMED.get(name) or ((old or {}).get("nodes") or [{}])[0].get("http_port")
    if not port:
        raise ESError(f"server {name!r} needs --port (only {', '.join(NAMED)} have their own)")
    nodes = _layout(name, port, transport_port or port + 100)
    for n in nodes:
        for p in (n["http_port"], n["transport_port"]):
            busy = _port_busy(p)
            if busy:
                raise ESError(f"port {p} for server {name!r} is in use by {busy}; stop it or pick another --port")
    srv = _prepare(name, nodes, fresh, old)
    t0 = time.monotonic()
    _launch(name, srv, nodes)
    say(f"starting {name} on {', '.join(srv['urls'])} (heap {srv['heap']} per node)")
    return _wait_healthy(name, srv, nodes, t0, timeout)


def _restart_nodes(name: str, srv: dict[str, Any], nodes: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Bring back dead nodes of a running cluster as they were, and wait until they joined."""
    say(f"restarting {', '.join(n['name'] for n in nodes)} of {name}")
    t0 = time.monotonic()
    _launch(name, srv, nodes)
    return _wait_healthy(name, srv, nodes, t0, timeout)


def _nodes_of(name: str, srv: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a server.json; one written by an older es.py has only urls and pids."""
    if srv.get("nodes"):
        return list(srv["nodes"])
    try:
        port = int(srv["urls"][0].rsplit(":", 1)[1])
    except (KeyError, IndexError, ValueError):
        return []
    return _layout(name, port, port + 100)


def _prepare(name: str, nodes: list[dict[str, Any]], fresh: bool, old: dict[str, Any] | None) -> dict[str, Any]:
    """The server's directories, config, certificates and users; returns its new server.json."""
    ids = _run_as()
    if ids:
        if not shutil.which("setpriv"):
            raise ESError("as root the server runs as nobody through setpriv: apt-get install util-linux")
        _check_reachable(CACHE)  # before fetching 100+ MB into a place nobody cannot use
        if CACHE == SHARED_CACHE and not os.environ.get("SHIPPER_ES_CACHE"):
            say(f"{_unreachable_parent(ROOT)} is closed to nobody: using the shared cache {CACHE}")
    home = fetch()
    base = SERVERS / name
    if fresh or old is None:
        shutil.rmtree(base, ignore_errors=True)
    _ensure_dir(base)
    secure = name == "secure"
    scheme = "https" if secure else "http"
    srv: dict[str, Any] = {
        "name": name,
        "version": VERSION,
        "dir": str(base),
        "home": str(home),
        "url": f"{scheme}://127.0.0.1:{nodes[0]['http_port']}",
        "urls": [f"{scheme}://127.0.0.1:{n['http_port']}" for n in nodes],
        "ports": {"http": [n["http_port"] for n in nodes], "transport": [n["transport_port"] for n in nodes]},
        "nodes": nodes,
        "pids": [0] * len(nodes),
        "secure": secure,
        "user": "nobody" if ids else _user_name(),
        "heap": "256m" if len(nodes) > 1 else "512m",
    }
    say(f"preparing {name} in {base}")
    for n in nodes:
        d = Path(n["dir"])
        _write_config(home, d / "config", _settings(name, n, nodes, secure))
        for sub in ("data", "logs", "tmp"):
            (d / sub).mkdir(exist_ok=True)
    if secure:
        srv.update(_make_certs(home, base / "config" / "certs"))
        _add_admin(home, base / "config", old)
        srv.update(username=ADMIN_USER, password=ADMIN_PASSWORD)
    _chown_tree(base, ids)
    for n in nodes:  # users, keys and the keystore are for the server's user (and root) only
        os.chmod(Path(n["dir"]) / "config", 0o750)
    if ids:
        _check_access(ids, home, base)
    return srv


def _launch(name: str, srv: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
    """Spawn `nodes` of the server (detached), recording their pids in server.json at once.

    At once, so that stop() finds even a server that never gets healthy.
    """
    home = Path(srv.get("home") or fetch())
    ids = _run_as()
    heap = srv.get("heap") or ("256m" if len(srv["nodes"]) > 1 else "512m")
    opts = f"-Xms{heap} -Xmx{heap}"
    if srv.get("secure"):
        # The minimal distribution lacks the analyzers of the .security index's mapping, so
        # the sync of built-in roles into it fails every few seconds: switch it off.
        opts += " -Des.queryable_built_in_roles_enabled=false"
    opts = f"{opts} {os.environ.get('SHIPPER_ES_JAVA_OPTS', '')}".strip()
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")}
    env["ES_JAVA_HOME"] = _java_home()
    env["ES_JAVA_OPTS"] = opts
    names = [n["name"] for n in srv["nodes"]]
    for n in nodes:
        d = Path(n["dir"])
        Path(n["pid_file"]).unlink(missing_ok=True)
        log = Path(n["log"])
        if log.exists() and log.stat().st_size > 20 << 20:  # appended to across restarts: keep it bounded
            log.replace(log.with_suffix(".log.1"))
        log.touch()
        if ids:
            os.chown(log, *ids)
        tmp = d / "tmp"  # scratch space: emptied at each start
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if ids:
            os.chown(tmp, *ids)
        # CLI_JAVA_OPTS: the launcher JVM, whose /tmp/final-flags* directories are never removed
        env.update(ES_PATH_CONF=str(d / "config"), ES_TMPDIR=str(tmp), CLI_JAVA_OPTS=f"-Djava.io.tmpdir={tmp}")
        cmd = [str(home / "bin" / "elasticsearch"), "-p", n["pid_file"]]
        if ids:
            cmd = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *cmd]
        srv["pids"][names.index(n["name"])] = _spawn(cmd, env, d, log)
        srv["started_at"] = time.time()
        _write_info(name, srv)


def _log_tail(srv: dict[str, Any], node: dict[str, Any]) -> str:
    """The end of a node's console log, or of its server log when the console said nothing."""
    logs = [Path(node["log"]), Path(node["dir"]) / "logs" / f"shipper-{srv['name']}.log"]
    for log in logs:
        if log.exists() and log.stat().st_size:
            return f"--- {log}\n{_tail(log)}"
    return f"--- {logs[0]} is empty"


def _wait_healthy(
    name: str, srv: dict[str, Any], nodes: list[dict[str, Any]], t0: float, timeout: float
) -> dict[str, Any]:
    deadline = t0 + timeout
    next_note = t0 + 15
    why = f"was not healthy within {timeout:.0f}s"
    while time.monotonic() < deadline:
        if healthy(srv):
            say(f"{name} is up after {time.monotonic() - t0:.1f}s")
            return srv
        dead = [n["name"] for n in nodes if not _pids(name, n["name"])]
        if dead:
            why = f"exited while starting ({', '.join(dead)})"
            break
        if time.monotonic() > next_note:
            say(f"still waiting for {name} ({time.monotonic() - t0:.0f}s)")
            next_note += 15
        time.sleep(0.5)
    logs = "\n".join(_log_tail(srv, n) for n in nodes)
    _stop(name)
    raise ESError(f"{name} {why}; its log ends:\n{logs}")


# --- stop, kill, status ---------------------------------------------------------------------------


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(name: str, timeout: float, node: str | None = None) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _pids(name, node)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _stop(name: str, timeout: float = STOP_TIMEOUT) -> bool:
    pids = _pids(name)
    if not pids:
        return False
    say(f"stopping {name} (pids {' '.join(map(str, pids))})")
    _signal(pids, signal.SIGTERM)
    left = _wait_gone(name, timeout)
    if left:
        say(f"{name} did not stop within {timeout:.0f}s: SIGKILL")
        _signal(left, signal.SIGKILL)
        if _wait_gone(name, 10):
            raise ESError(f"{name} survived SIGKILL: pids {_pids(name)}")
    return True


def stop(name: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the server's processes, wait for them, SIGKILL after `timeout` seconds."""
    _check_name(name)
    with _lock(name):
        _stop(name, timeout)


def kill(name: str, node: int | None = None) -> None:
    """SIGKILL, as a crash would (for fault tests); `node` picks one node of a cluster."""
    _check_name(name)
    with _lock(name):
        srv = info(name) or {}
        target = None
        if node is not None:
            names = [n["name"] for n in _nodes_of(name, srv)]
            if not 0 <= node < len(names):
                raise ESError(f"{name} has no node {node}")
            target = names[node]
        pids = _pids(name, target)
        _signal(pids, signal.SIGKILL)
        if _wait_gone(name, 10, target):  # the ports are free again when kill() returns
            raise ESError(f"{name} survived SIGKILL")


def kill_node(name: str, i: int) -> None:
    """SIGKILL node `i` (0-based) of a cluster: a node that dies; start_node() brings it back."""
    kill(name, node=i)


def start_node(name: str, i: int, timeout: float | None = None) -> dict[str, Any]:
    """Bring node `i` of a cluster back as it was (if it is down); waits until the cluster has it."""
    _check_name(name)
    with _lock(name):
        srv = info(name)
        if not srv:
            raise ESError(f"no server {name!r}")
        srv["nodes"] = _nodes_of(name, srv)
        if not 0 <= i < len(srv["nodes"]):
            raise ESError(f"{name} has no node {i}")
        node = srv["nodes"][i]
        if _pids(name, node["name"]):
            return srv
        return _restart_nodes(name, srv, [node], TIMEOUT if timeout is None else timeout)


def _names() -> list[str]:
    if not SERVERS.is_dir():
        return []
    return sorted(d.name for d in SERVERS.iterdir() if d.is_dir() and re.fullmatch(NAME_RE, d.name))


def stop_all() -> None:
    """Stop every server of this cache, also ones whose server.json is gone."""
    for name in _names():
        stop(name)
    stray = _scan(str(SERVERS))
    if stray:
        say(f"stopping stray server processes {' '.join(map(str, stray))}")
        _signal(stray, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while (stray := _scan(str(SERVERS))) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal(stray, signal.SIGKILL)


def status() -> list[dict[str, Any]]:
    """One entry per server that has a server.json: urls, live pids, running, healthy."""
    out = []
    for name in _names():
        srv = info(name)
        if srv:
            pids = _pids(name)
            nodes = [n["name"] for n in _nodes_of(name, srv)] or [name]
            up = sum(1 for n in nodes if _pids(name, n))
            out.append(
                {
                    "name": name,
                    "urls": srv.get("urls"),
                    "pids": pids,
                    "nodes_running": f"{up}/{len(nodes)}",
                    "running": up > 0,
                    "healthy": up > 0 and healthy(srv),
                }
            )
    return out


# --- file-realm users, roles and service tokens (the secure server) --------------------------------


def add_user(name: str, user: str, password: str, roles: list[str]) -> None:
    """A file-realm user on the secure server (picked up by the running server within seconds)."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    conf = Path(srv["dir"]) / "config"
    _tool(fetch(), "elasticsearch-users", "useradd", user, "-p", password, "-r", ",".join(roles), conf=conf)
    _chown_tree(conf, _run_as())


def add_role(name: str, role: str, definition: str) -> None:
    """Append a role (YAML body, indented under the role name) to the server's roles.yml."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    roles = Path(srv["dir"]) / "config" / "roles.yml"
    text = roles.read_text() if roles.exists() else ""
    if f"\n{role}:" not in "\n" + text:
        body = "".join(f"  {line}\n" for line in definition.strip().splitlines())
        roles.write_text(text.rstrip("\n") + f"\n{role}:\n{body}")
    _chown_tree(roles, _run_as())


def service_token(name: str, service: str, token: str) -> str:
    """A file-based service token (`elastic/fleet-server` etc.); returns the bearer value."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    conf = Path(srv["dir"]) / "config"
    out = _tool(fetch(), "elasticsearch-service-tokens", "create", service, token, conf=conf)
    _chown_tree(conf, _run_as())
    return out.strip().rsplit(" = ", 1)[1]


# --- CLI ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="es.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download and unpack the distribution (idempotent)")
    p = sub.add_parser("start", help="start a server and print its server.json")
    p.add_argument("name")
    p.add_argument("--port", type=int, help="HTTP port (a cluster uses it and the next ones)")
    p.add_argument("--transport-port", type=int, help="transport port (default: HTTP port + 100)")
    p.add_argument("--fresh", action="store_true", help="wipe the server's data first")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds to wait (default {TIMEOUT:.0f})")
    p = sub.add_parser("stop", help="SIGTERM, then SIGKILL after --timeout")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=STOP_TIMEOUT)
    p = sub.add_parser("kill", help="SIGKILL (a crash, for fault tests)")
    p.add_argument("name")
    p.add_argument("--node", type=int, help="only this node (0-based) of a cluster")
    sub.add_parser("stop-all", help="stop every server")
    sub.add_parser("status", help="one JSON line per server")
    p = sub.add_parser("info", help="print a server's server.json")
    p.add_argument("name")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "fetch":
            print(fetch())
        elif a.cmd == "start":
            print(json.dumps(start(a.name, a.port, a.fresh, transport_port=a.transport_port, timeout=a.timeout)))
        elif a.cmd == "stop":
            stop(a.name, a.timeout)
        elif a.cmd == "kill":
            kill(a.name, a.node)
        elif a.cmd == "stop-all":
            stop_all()
        elif a.cmd == "status":
            for s in status():
                print(json.dumps(s))
        elif a.cmd == "info":
            srv = info(a.name)
            if not srv:
                raise ESError(f"no server {a.name!r} (start it first)")
            print(json.dumps(srv))
    except (ESError, OSError) as e:
        print(f"es: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
