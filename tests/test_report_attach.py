"""--postdeploy-attach: the sign-off uploaded and commented on the change ticket, against loopback servers
that speak Jira Cloud REST v3, ServiceNow's Attachment and Table APIs and GitHub's REST API."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SYS_ID = "a9e30c7dc61122760116894de7bcc7bd"
USER, SECRET = "release-bot@example.com", f"tok-{uuid.uuid4().hex}"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class TicketService:
    """One loopback service: checks credentials and the documented request shape, answers the
    documented response shape; `hang` answers nothing within any sensible timeout."""

    service: str
    hang: bool = False
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length))
                service.seen.append(seen)
                if service.hang:
                    time.sleep(4)
                status, body = service.answer(seen)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorised(self, seen: Seen) -> bool:
        if self.service == "github":
            return seen.headers.get("Authorization") == f"Bearer {SECRET}"
        return seen.headers.get("Authorization") == "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

    def answer(self, seen: Seen) -> tuple[int, object]:
        if not self.authorised(seen):
            return 401, {"errorMessages": ["You are not authenticated."]} if self.service == "jira" else {"message": "Bad credentials"}
        return getattr(self, self.service)(seen)

    def jira(self, seen: Seen) -> tuple[int, object]:
        if seen.method == "POST" and seen.path == "/rest/api/3/issue/CHG-123/attachments":
            if seen.headers.get("X-Atlassian-Token") != "no-check":
                return 403, {"errorMessages": ["XSRF check failed"]}
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {seen.headers['Content-Type']}\r\n\r\n".encode() + seen.body
            )
            files = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
            if len(files) != 1:
                return 400, {"errorMessages": ["no file field"]}
            name = files[0].get_filename()
            return 200, [{"self": f"{self.url}/rest/api/3/attachments/10001", "id": "10001", "filename": name,
                          "mimeType": files[0].get_content_type(), "size": len(files[0].get_payload(decode=True))}]
        if seen.method == "POST" and seen.path == "/rest/api/3/issue/CHG-123/comment":
            body = json.loads(seen.body)["body"]
            if body.get("type") != "doc" or body.get("version") != 1:
                return 400, {"errorMessages": ["Comment body is not a valid document"]}
            return 201, {"self": f"{self.url}/rest/api/3/issue/10010/comment/10000", "id": "10000", "body": body}
        return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}

    def servicenow(self, seen: Seen) -> tuple[int, object]:
        if seen.method == "GET" and seen.path == "/api/now/table/change_request":
            number = seen.query["sysparm_query"][0].removeprefix("number=")
            return 200, {"result": [{"sys_id": SYS_ID, "number": number}] if number == "CHG0030001" else []}
        if seen.method == "POST" and seen.path == "/api/now/attachment/file":
            q = {k: v[0] for k, v in seen.query.items()}
            if q.get("table_sys_id") != SYS_ID or not q.get("file_name") or not seen.headers.get("Content-Type"):
                return 400, {"error": {"message": "Invalid file type or table"}}
            return 201, {"result": {"sys_id": "b2e30c7d", "file_name": q["file_name"], "table_name": q["table_name"],
                                    "table_sys_id": q["table_sys_id"], "content_type": seen.headers["Content-Type"],
                                    "size_bytes": str(len(seen.body))}}
        if seen.method == "PATCH" and seen.path == f"/api/now/table/change_request/{SYS_ID}":
            return 200, {"result": {"sys_id": SYS_ID, "number": "CHG0030001", "work_notes": ""}}
        return 404, {"error": {"message": "No Record found"}}

    def github(self, seen: Seen) -> tuple[int, object]:
        if seen.method == "POST" and seen.path == "/repos/acme/inventory/issues/42/comments":
            if seen.headers.get("Accept") != "application/vnd.github+json":
                return 415, {"message": "Unsupported Media Type"}
            body = json.loads(seen.body)["body"]
            return 201, {"id": 1, "html_url": "https://github.com/acme/inventory/issues/42#issuecomment-1", "body": body}
        return 404, {"message": "Not Found"}


TICKETS = {"jira": "jira:CHG-123", "servicenow": "servicenow:CHG0030001", "github": "github:acme/inventory#42"}


@pytest.fixture
def services():
    started: list[TicketService] = []

    def start(*, hang: bool = False) -> dict[str, TicketService]:
        made = {name: TicketService(name, hang=hang) for name in TICKETS}
        started.extend(made.values())
        return made

    yield start
    for s in started:
        s.stop()


def environment(services: dict[str, TicketService], secret: str = SECRET) -> dict[str, str]:
    return {
        "JIRA_URL": services["jira"].url, "JIRA_EMAIL": USER, "JIRA_API_TOKEN": secret,
        "SERVICENOW_URL": services["servicenow"].url, "SERVICENOW_USER": USER, "SERVICENOW_PASSWORD": secret,
        "GITHUB_API_URL": services["github"].url, "GITHUB_TOKEN": secret,
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/inventory", "GITHUB_RUN_ID": "7",
    }


def signoff(run_suite, env: dict[str, str], *extra: str):
    attach = [a for ticket in TICKETS.values() for a in ("--postdeploy-attach", ticket)]
    # The whole demo: a GO (a narrowed run would be a partial GO, exit 7, whatever the attachments).
    return run_suite("-m", "post_deploy", "--postdeploy-target", "demo", *attach, *extra, env=env)


def everything_written(run) -> str:
    return run.output + "".join(p.read_text() for p in run.folder.iterdir())


def test_each_service_receives_the_upload_and_the_comment(run_suite, services):
    up = services()
    run = signoff(run_suite, environment(up))
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    html = (run.folder / "sign-off.html").read_bytes()
    markdown = (run.folder / "sign-off.md").read_text()

    jira = [(s.method, s.path) for s in up["jira"].seen]
    assert jira == [("POST", "/rest/api/3/issue/CHG-123/attachments"), ("POST", "/rest/api/3/issue/CHG-123/comment")]
    assert html in up["jira"].seen[0].body
    comment = json.loads(up["jira"].seen[1].body)["body"]
    assert comment["content"][1]["content"][0]["text"] == markdown
    assert "Attached to jira:CHG-123: sign-off.html (attachment 10001), comment 10000" in run.output

    now = up["servicenow"].seen
    assert [(s.method, s.path) for s in now] == [
        ("GET", "/api/now/table/change_request"),
        ("POST", "/api/now/attachment/file"),
        ("PATCH", f"/api/now/table/change_request/{SYS_ID}"),
    ]
    assert now[1].body == html and now[1].headers["Content-Type"] == "text/html"
    assert now[1].query["file_name"] == ["sign-off.html"]
    assert json.loads(now[2].body)["work_notes"].startswith(markdown)
    assert "Attached to servicenow:CHG0030001: sign-off.html (attachment b2e30c7d)" in run.output

    (github,) = up["github"].seen
    body = json.loads(github.body)["body"]
    assert body.startswith(markdown)
    assert "artifacts of https://github.com/acme/inventory/actions/runs/7" in body
    assert "Attached to github:acme/inventory#42: comment https://github.com/acme/inventory/issues/42#issuecomment-1" in run.output
    assert SECRET not in everything_written(run)


def test_refused_credentials_are_one_line_each_and_exit_6(run_suite, services):
    up = services()
    wrong = f"wrong-{uuid.uuid4().hex}"
    run = signoff(run_suite, environment(up, secret=wrong))
    assert run.exit_code == 6, run.output
    failures = [line for line in run.output.splitlines() if line.startswith("ATTACH FAILED")]
    assert failures == [
        "ATTACH FAILED: jira:CHG-123: POST /rest/api/3/issue/CHG-123/attachments answered 401 Unauthorized",
        "ATTACH FAILED: servicenow:CHG0030001: GET /api/now/table/change_request answered 401 Unauthorized",
        "ATTACH FAILED: github:acme/inventory#42: POST /repos/acme/inventory/issues/42/comments answered 401 Unauthorized",
    ]
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - "), "the verdict is unchanged"
    assert run.signoff["verdict"] == "GO"
    assert wrong not in everything_written(run) and "Traceback" not in run.output


def test_a_service_that_does_not_answer_is_one_line_each(run_suite, services):
    up = services(hang=True)
    run = signoff(run_suite, environment(up), "--postdeploy-attach-timeout", "0.5")
    assert run.exit_code == 6, run.output
    failures = [line for line in run.output.splitlines() if line.startswith("ATTACH FAILED")]
    assert failures == [f"ATTACH FAILED: {t}: no answer within 0.5 s (--postdeploy-attach-timeout)" for t in TICKETS.values()]
    assert SECRET not in everything_written(run) and "Traceback" not in run.output


def test_a_no_go_keeps_exit_1_when_the_attachment_fails(run_suite, services):
    up = services()
    env = environment(up, secret="wrong-secret") | {"POSTDEPLOY_APP_FAULT": "log_errors"}
    run = run_suite("-m", "post_deploy and health", "--postdeploy-target", "demo", "--postdeploy-attach", TICKETS["github"], env=env)
    assert run.exit_code == 1, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: NO-GO - ")
    assert sum(line.startswith("ATTACH FAILED") for line in run.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        ("trello:42", {}, "--postdeploy-attach 'trello:42': give service:ticket, e.g. jira:CHG-123"),
        ("jira:chg 1", {}, "--postdeploy-attach 'jira:chg 1': jira ticket not recognised, e.g. jira:CHG-123"),
        ("jira:CHG-1", {"JIRA_URL": "http://127.0.0.1:9"}, "--postdeploy-attach jira:CHG-1: set JIRA_EMAIL, JIRA_API_TOKEN in the environment"),
        ("github:acme/inventory#42", {}, "--postdeploy-attach github:acme/inventory#42: set GITHUB_TOKEN in the environment"),
    ],
)
def test_bad_attach_is_a_usage_error(run_suite, spec, env, message):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-attach", spec, env=env | {"GITHUB_TOKEN": ""})
    assert run.exit_code == 4, run.output
    assert message in run.output and "Traceback" not in run.output
    assert not any(Path(run.report_dir).iterdir()), "nothing ran, nothing written"
