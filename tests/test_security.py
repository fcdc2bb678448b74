"""The output against the real Elasticsearch with security and HTTPS on: a least-privilege
user from the file realm, a service (bearer) token, a wrong password. Secrets never show."""

from __future__ import annotations

import secrets
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.integration

WRITER_ROLE = """
cluster: ["monitor"]
indices:
  - names: ["shipper-logs-*"]
    privileges: ["create_doc", "auto_configure"]
"""


@pytest.fixture(scope="session")
def es_secure() -> Any:
    import es  # scripts/es.py

    srv = es.start("secure")
    es.add_role("secure", "shipper_writer", WRITER_ROLE)
    password = "writer-" + secrets.token_hex(6)
    user = f"writer{secrets.token_hex(3)}"
    es.add_user("secure", user, password, ["shipper_writer"])
    token = es.service_token("secure", "elastic/fleet-server", f"t{secrets.token_hex(4)}")
    from elasticsearch import Elasticsearch

    admin = Elasticsearch(srv["url"], basic_auth=(srv["username"], srv["password"]), ca_certs=srv["ca_file"])

    def writer_works() -> bool:  # the file realm reloads users and roles within seconds
        try:
            Elasticsearch(srv["url"], basic_auth=(user, password), ca_certs=srv["ca_file"]).cluster.health()
            return True
        except Exception:
            return False

    wait_for(writer_works, 60, "the file-realm user")
    yield {**srv, "writer": (user, password), "token": token, "admin": admin}
    if not __import__("os").environ.get("SHIPPER_KEEP_ES"):
        es.stop("secure")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()
    except OSError:
        return ""


def run_agent(
    agent_factory: Any, tmp_path: Path, es_out: dict[str, Any], inputs: list[dict[str, Any]], lines: int = 200
) -> tuple[Any, int]:
    for inp in inputs:
        d = tmp_path / inp["id"]
        d.mkdir()
        (d / "a.log").write_text("".join(f"{inp['id']} line {i}\n" for i in range(lines)))
        inp["paths"] = [f"{d}/*.log"]
    port = free_port()
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": inputs,
            "output": {"elasticsearch": {"backoff_max": "1s", **es_out}},
            "http": {"listen": f"127.0.0.1:{port}"},
        }
    ).start()
    return agent, port


def count(admin: Any, index: str) -> int:
    try:
        admin.indices.refresh(index=index)
        return int(admin.count(index=index)["count"])
    except Exception:
        return 0


def test_least_privilege_user_over_https(es_secure: dict[str, Any], agent_factory: Any, tmp_path: Path) -> None:
    user, password = es_secure["writer"]
    input_id = f"sec-{secrets.token_hex(3)}"
    agent, port = run_agent(
        agent_factory,
        tmp_path,
        {
            "hosts": [es_secure["url"]],
            "username": user,
            "password": password,
            "tls": {"ca_file": es_secure["ca_file"]},
        },
        [{"id": input_id}],
    )
    wait_for(lambda: count(es_secure["admin"], f"shipper-logs-{input_id}-*") == 200, 60, "200 documents")
    assert '"elasticsearch":"ok"' in ready(port)
    assert agent.stop() == 0
    log = agent.log()
    assert "cannot install index template" in log  # a warning, not a stop: no manage_index_templates
    assert password not in log


def test_bad_credential_is_auth_failed_then_resumes_when_fixed(
    es_secure: dict[str, Any], agent_factory: Any, tmp_path: Path
) -> None:
    user, bad = f"late{secrets.token_hex(3)}", "secret-" + secrets.token_hex(8)
    input_id = f"late-{secrets.token_hex(3)}"
    agent, port = run_agent(
        agent_factory,
        tmp_path,
        {
            "hosts": [es_secure["url"]],
            "username": user,
            "password": bad,
            "tls": {"ca_file": es_secure["ca_file"]},
            "backoff_max": "2s",
        },
        [{"id": input_id}],
    )
    wait_for(lambda: '"elasticsearch":"auth_failed"' in ready(port), 30, "/ready to say auth_failed")
    time.sleep(1)
    assert agent.proc.poll() is None, "a bad credential pauses shipping, it does not kill the agent"
    import es  # scripts/es.py

    es.add_user("secure", user, bad, ["shipper_writer"])  # the operator fixes it: the same agent resumes
    wait_for(lambda: count(es_secure["admin"], f"shipper-logs-{input_id}-*") == 200, 90, "200 documents")
    assert '"elasticsearch":"ok"' in ready(port)
    assert agent.stop() == 0
    log = agent.log()
    assert "401" in log and "delivering again" in log
    assert bad not in log


def test_verify_off_by_explicit_choice(es_secure: dict[str, Any], agent_factory: Any, tmp_path: Path) -> None:
    user, password = es_secure["writer"]
    input_id = f"nov-{secrets.token_hex(3)}"
    agent, _ = run_agent(
        agent_factory,
        tmp_path,
        {
            "hosts": [es_secure["url"]],
            "username": user,
            "password": password,
            "tls": {"verify": False},
        },
        [{"id": input_id}],
    )
    wait_for(lambda: count(es_secure["admin"], f"shipper-logs-{input_id}-*") == 200, 60, "200 documents")
    assert agent.stop() == 0


def test_service_token_writes_logs_index_and_holds_forbidden_one(
    es_secure: dict[str, Any], agent_factory: Any, tmp_path: Path
) -> None:
    ok_id, denied_id = f"tok-{secrets.token_hex(3)}", f"den-{secrets.token_hex(3)}"
    agent, port = run_agent(
        agent_factory,
        tmp_path,
        {
            "hosts": [es_secure["url"]],
            "bearer_token": es_secure["token"],
            "tls": {"ca_file": es_secure["ca_file"]},
            "template": False,
        },
        [{"id": ok_id, "index": "logs-shipper-{input}"}, {"id": denied_id}],
    )
    admin = es_secure["admin"]
    wait_for(lambda: count(admin, f"logs-shipper-{ok_id}") == 200, 60, "the permitted index to fill")
    wait_for(lambda: '"elasticsearch":"index_forbidden"' in ready(port), 30, "/ready to say index_forbidden")
    assert count(admin, f"shipper-logs-{denied_id}-*") == 0
    assert agent.stop() == 0
    assert es_secure["token"] not in agent.log()
