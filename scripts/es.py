#!/usr/bin/env python3
"""Fetch, start and stop a real Elasticsearch for development, tests and CI.

The official minimal distribution (`org.elasticsearch.distribution.integ-test-zip`,
from Maven Central) is fetched once with Maven into a git-ignored cache and unpacked.
Named servers keep tests from fighting over one: `plain` (security off, :9201, the
tests' server), `demo` (:9200, the README's demo), `secure` (HTTPS and the file realm,
:9202), `trio` (three nodes, :9211-9213), and any other name with `--port` for a test
that stops or kills a server of its own. Elasticsearch refuses to run as root, so as
root each server runs as `nobody` (setpriv), with its own directories chowned to it.

    python scripts/es.py fetch | start NAME [--port P] [--fresh] | stop NAME | kill NAME
                         | stop-all | status | info NAME

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VERSION = os.environ.get("SHIPPER_ES_VERSION", "8.19.21")


class ESError(RuntimeError):
    """The server could not be fetched, started or found; the message says why."""


def _traversable(path: Path) -> bool:
    return all(not p.exists() or os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _cache() -> Path:
    """`.cache/es` in the repo; as root, a shared directory when `nobody` cannot reach the repo."""
    if os.environ.get("SHIPPER_ES_CACHE"):
        return Path(os.environ["SHIPPER_ES_CACHE"])
    local = ROOT / ".cache" / "es"
    if os.geteuid() != 0 or _traversable(ROOT):
        return local
    return Path("/var/tmp/shipper-es")  # e.g. a clone under a 0700 mktemp directory


CACHE = _cache()
HOME = CACHE / f"elasticsearch-{VERSION}"
SERVERS = CACHE / "servers"
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
ADMIN_PASSWORD = os.environ.get("SHIPPER_ES_ADMIN_PASSWORD", "shipper-admin-pw")
NAMED = {"plain": 9201, "demo": 9200, "secure": 9202, "trio": 9211}
TIMEOUT = float(os.environ.get("SHIPPER_ES_START_TIMEOUT", "180"))


def say(msg: str) -> None:
    print(f"es: {msg}", file=sys.stderr, flush=True)


# --- fetch ---------------------------------------------------------------------------------


def fetch() -> Path:
    """The unpacked distribution (downloaded with Maven once, then cached)."""
    if (HOME / "bin" / "elasticsearch").exists():
        return HOME
    m2 = Path.home() / ".m2" / "repository" / "org" / "elasticsearch" / "distribution" / "integ-test-zip"
    zip_path = m2 / "elasticsearch" / VERSION / f"elasticsearch-{VERSION}.zip"
    if not zip_path.exists():
        if not shutil.which("mvn"):
            raise ESError("Maven (mvn) is needed to fetch Elasticsearch: apt-get install maven")
        say(f"fetching {ARTIFACT} from Maven Central (~107 MB, once)")
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={ARTIFACT}", "-Dtransitive=false"], check=True
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    os.chmod(CACHE, 0o755)
    tmp = CACHE / f".unpack-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(tmp)
        for member in z.infolist():  # zipfile drops the modes: restore them (bin/ scripts)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                (tmp / member.filename).chmod(mode)
    shutil.rmtree(HOME, ignore_errors=True)
    (tmp / f"elasticsearch-{VERSION}").rename(HOME)
    tmp.rmdir()
    _readable_by_all(HOME)
    say(f"unpacked into {HOME}")
    return HOME


def _readable_by_all(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            os.chmod(p, os.stat(p).st_mode | 0o444)


def _check_traversable(path: Path) -> None:
    """`nobody` must be able to reach the distribution: every parent needs o+x."""
    if not _root():
        return
    for parent in [path, *path.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise ESError(
                f"{parent} is not traversable by other users; the server runs as nobody. "
                f"chmod o+x {parent}, or set SHIPPER_ES_CACHE to a directory it can reach"
            )


# --- servers --------------------------------------------------------------------------------


def _root() -> bool:
    return os.geteuid() == 0


def _nodes(name: str, port: int) -> list[dict[str, Any]]:
    if name == "trio":
        return [{"node": f"trio-{i}", "http": port + i, "transport": port + 100 + i} for i in range(3)]
    return [{"node": name, "http": port, "transport": port + 100}]


def info(name: str) -> dict[str, Any] | None:
    path = SERVERS / name / "server.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Is `pid` still our server (not gone, not a zombie, not a reused pid)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    # empty between fork and exec; after that the launcher, setpriv or the JVM
    return not cmd or any(w in cmd for w in (b"elasticsearch", b"java", b"setpriv"))


def _request(srv: dict[str, Any], path: str, node: int = 0, timeout: float = 5) -> dict[str, Any]:
    url = srv["urls"][node] + path
    req = urllib.request.Request(url)
    ctx = None
    if srv.get("ca_file"):
        ctx = ssl.create_default_context(cafile=srv["ca_file"])
    if srv.get("username"):
        token = base64.b64encode(f"{srv['username']}:{srv['password']}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        return json.loads(r.read())


def healthy(srv: dict[str, Any]) -> bool:
    want = len(srv["pids"])
    try:
        h = _request(srv, "/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return h.get("status") in ("green", "yellow") and h.get("number_of_nodes") == want


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start(name: str, port: int | None = None, fresh: bool = False) -> dict[str, Any]:
    """Start server `name` (idempotent: a healthy running one is reused); returns its info."""
    srv = info(name)
    if srv and all(_alive(p) for p in srv["pids"]) and healthy(srv) and not fresh:
        return srv
    if srv:
        stop(name)
    home = fetch()
    _check_traversable(home)
    port = port or NAMED.get(name)
    if port is None:
        raise ESError(f"server {name!r} needs --port")
    base = SERVERS / name
    if fresh or not (base / "server.json").exists():
        shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    nodes = _nodes(name, port)
    for n in nodes:
        for p in (n["http"], n["transport"]):
            if not _port_free(p):
                raise ESError(f"port {p} for server {name!r} is in use by another process")
    secure = name == "secure"
    srv = {"name": name, "version": VERSION, "urls": [], "pids": [], "dir": str(base)}
    if secure:  # TLS files must live in the config directory (the server's entitlements)
        if not (base / "config").exists():
            shutil.copytree(home / "config", base / "config")
        srv.update(_make_certs(home, base / "config" / "certs"), username="admin", password=ADMIN_PASSWORD)
    scheme = "https" if secure else "http"
    for n in nodes:
        node_dir = base / n["node"] if name == "trio" else base
        conf = node_dir / "config"
        if not conf.exists():
            shutil.copytree(home / "config", conf)
        settings = {
            "cluster.name": f"shipper-{name}",
            "node.name": n["node"],
            "network.host": "127.0.0.1",
            "http.port": n["http"],
            "transport.port": n["transport"],
            "path.data": str(node_dir / "data"),
            "path.logs": str(node_dir / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": False,
            "xpack.security.enabled": secure,
        }
        if name == "trio":
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{x['transport']}" for x in nodes]
            settings["cluster.initial_master_nodes"] = [x["node"] for x in nodes]
        else:
            settings["discovery.type"] = "single-node"
        if secure:
            settings.update(
                {
                    "xpack.security.http.ssl.enabled": True,
                    "xpack.security.http.ssl.certificate": "certs/node.crt",
                    "xpack.security.http.ssl.key": "certs/node.key",
                    "xpack.security.http.ssl.certificate_authorities": ["certs/ca.crt"],
                    "xpack.security.authc.realms.file.file1.order": 0,
                }
            )
        (conf / "elasticsearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
        for d in ("data", "logs", "tmp"):
            (node_dir / d).mkdir(exist_ok=True)
        if secure:
            _add_admin(home, conf)
        if _root():
            subprocess.run(["chown", "-R", "nobody:nogroup", str(node_dir)], check=True)
            subprocess.run(["chown", "-R", "nobody:nogroup", str(base)], check=True)
        heap = "256m" if name == "trio" else "512m"
        launch = {
            "env": {
                "ES_PATH_CONF": str(conf),
                "ES_TMPDIR": str(node_dir / "tmp"),
                "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
            },
            "cmd": [str(home / "bin" / "elasticsearch"), "-p", str(node_dir / "es.pid")],
            "dir": str(node_dir),
        }
        srv.setdefault("launch", []).append(launch)
        srv["pids"].append(_launch(launch))
        srv["urls"].append(f"{scheme}://127.0.0.1:{n['http']}")
    srv["url"] = srv["urls"][0]
    (base / "server.json").write_text(json.dumps(srv))
    say(f"starting {name} on {', '.join(srv['urls'])}")
    deadline = time.monotonic() + TIMEOUT
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        if healthy(srv):
            say(f"{name} is up after {time.monotonic() - t0:.1f}s")
            return srv
        if not all(_alive(p) for p in srv["pids"]):
            break
        time.sleep(0.5)
    why = (
        "exited while starting" if not all(_alive(p) for p in srv["pids"]) else f"was not healthy within {TIMEOUT:.0f}s"
    )
    logs = "\n".join(
        _tail(base / x["node"] / "logs" / "stdout.log" if name == "trio" else base / "logs" / "stdout.log")
        for x in nodes
    )
    stop(name)
    raise ESError(f"{name} {why}; its log ends:\n{logs}")


def _launch(launch: dict[str, Any]) -> int:
    """Start one node detached (its own session, so it outlives this script); its pid."""
    env = {**os.environ, **launch["env"]}
    env.setdefault("ES_JAVA_HOME", _java_home())
    cmd = launch["cmd"]
    if _root():
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    node_dir = Path(launch["dir"])
    with open(node_dir / "logs" / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(node_dir),
        )
    return proc.pid


def kill_node(name: str, i: int) -> None:
    """SIGKILL one node of a multi-node server (a node that dies)."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    if _alive(srv["pids"][i]):
        os.killpg(srv["pids"][i], signal.SIGKILL)
    _reap()


def start_node(name: str, i: int) -> dict[str, Any]:
    """Bring one node of a multi-node server back, as it was; waits until the cluster has it."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    if not _alive(srv["pids"][i]):
        srv["pids"][i] = _launch(srv["launch"][i])
        (Path(srv["dir"]) / "server.json").write_text(json.dumps(srv))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if healthy(srv):
            return srv
        time.sleep(0.5)
    raise ESError(f"node {i} of {name} did not rejoin within {TIMEOUT:.0f}s")


def _java_home() -> str:
    java = shutil.which("java")
    if not java:
        raise ESError("Java 17+ is needed: apt-get install openjdk-17-jre-headless")
    return str(Path(os.path.realpath(java)).parent.parent)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def _tool(home: Path, name: str, *args: str, conf: Path | None = None) -> str:
    env = {**os.environ, "ES_JAVA_HOME": os.environ.get("ES_JAVA_HOME", _java_home())}
    if conf:
        env["ES_PATH_CONF"] = str(conf)
    r = subprocess.run([str(home / "bin" / name), *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise ESError(f"{name} {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def _make_certs(home: Path, certs: Path) -> dict[str, str]:
    """A CA and a node certificate for 127.0.0.1/localhost, made with certutil (PEM)."""
    if not (certs / "node.crt").exists():
        certs.mkdir(parents=True, exist_ok=True)
        work = certs.parent.parent / "certwork"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        _tool(
            home, "elasticsearch-certutil", "ca", "--pem", "--silent", "--days", "3650", "--out", str(work / "ca.zip")
        )
        with zipfile.ZipFile(work / "ca.zip") as z:
            z.extractall(work)
        _tool(
            home,
            "elasticsearch-certutil",
            "cert",
            "--pem",
            "--silent",
            "--days",
            "3650",
            "--ca-cert",
            str(work / "ca" / "ca.crt"),
            "--ca-key",
            str(work / "ca" / "ca.key"),
            "--name",
            "node",
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--out",
            str(work / "node.zip"),
        )
        with zipfile.ZipFile(work / "node.zip") as z:
            z.extractall(work)
        shutil.copy(work / "ca" / "ca.crt", certs / "ca.crt")
        shutil.copy(work / "ca" / "ca.key", certs / "ca.key")
        shutil.copy(work / "node" / "node.crt", certs / "node.crt")
        shutil.copy(work / "node" / "node.key", certs / "node.key")
        shutil.rmtree(work)
    return {"ca_file": str(certs / "ca.crt"), "ca_key": str(certs / "ca.key")}


def _add_admin(home: Path, conf: Path) -> None:
    users = (conf / "users").read_text() if (conf / "users").exists() else ""
    if not users.startswith("admin:") and "\nadmin:" not in users:
        _tool(home, "elasticsearch-users", "useradd", "admin", "-p", ADMIN_PASSWORD, "-r", "superuser", conf=conf)


def add_user(name: str, user: str, password: str, roles: list[str]) -> None:
    """A file-realm user on the secure server (picked up by the running server within seconds)."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    conf = Path(srv["dir"]) / "config"
    _tool(fetch(), "elasticsearch-users", "useradd", user, "-p", password, "-r", ",".join(roles), conf=conf)
    if _root():
        subprocess.run(["chown", "-R", "nobody:nogroup", str(conf)], check=True)


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


def service_token(name: str, service: str, token: str) -> str:
    """A file-based service token (`elastic/fleet-server` etc.); returns the bearer value."""
    srv = info(name)
    if not srv:
        raise ESError(f"no server {name!r}")
    conf = Path(srv["dir"]) / "config"
    out = _tool(fetch(), "elasticsearch-service-tokens", "create", service, token, conf=conf)
    if _root():
        subprocess.run(["chown", "-R", "nobody:nogroup", str(conf)], check=True)
    return out.strip().rsplit(" = ", 1)[1]


def _signal(name: str, sig: int) -> list[int]:
    srv = info(name)
    if not srv:
        return []
    pids = [p for p in srv["pids"] if _alive(p)]
    for pid in pids:
        try:
            os.killpg(pid, sig)  # the launcher and the JVM it started
        except ProcessLookupError:
            pass
    return pids


def stop(name: str, timeout: float = 30) -> None:
    pids = _signal(name, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.2)
    if pids:
        _signal(name, signal.SIGKILL)
    _reap()


def kill(name: str) -> None:
    """SIGKILL, as a crash would: for fault tests."""
    _signal(name, signal.SIGKILL)
    _reap()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def stop_all() -> None:
    if SERVERS.exists():
        for d in SERVERS.iterdir():
            stop(d.name)


def status() -> list[dict[str, Any]]:
    out = []
    if SERVERS.exists():
        for d in sorted(SERVERS.iterdir()):
            srv = info(d.name)
            if srv:
                up = all(_alive(p) for p in srv["pids"])
                out.append({"name": d.name, "urls": srv["urls"], "running": up, "healthy": up and healthy(srv)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["fetch", "start", "stop", "kill", "stop-all", "status", "info"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--port", type=int)
    ap.add_argument("--fresh", action="store_true", help="wipe the server's data first")
    a = ap.parse_args()
    try:
        _main(ap, a)
    except ESError as e:
        raise SystemExit(f"es: {e}") from None


def _main(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.cmd in ("start", "stop", "kill", "info") and not a.name:
        ap.error(f"{a.cmd} needs a server name ({', '.join(NAMED)} or your own with --port)")
    if a.cmd == "fetch":
        print(fetch())
    elif a.cmd == "start":
        print(json.dumps(start(a.name, a.port, a.fresh)))
    elif a.cmd == "stop":
        stop(a.name)
    elif a.cmd == "kill":
        kill(a.name)
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


if __name__ == "__main__":
    main()
