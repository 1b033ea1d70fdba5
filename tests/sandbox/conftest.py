"""Helpers for the sandbox's HTTP tests: a control-API client and a tiny webhook receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class AccountHttp:
    """requests against one sandbox account's API, authenticated with ``headers``."""

    def __init__(self, account, headers: dict[str, str]):
        self.account = account
        self.session = requests.Session()
        self.session.headers.update(headers)

    def __call__(self, method, path, **kwargs):
        return self.session.request(method, self.account.base_url + path, timeout=10, **kwargs)


class Control:
    """The sandbox's control API under /_sandbox/."""

    def __init__(self, server):
        self.url = server.url + "/_sandbox"

    def call(self, method, path, body=None, **params):
        response = requests.request(method, self.url + path, json=body, params=params or None, timeout=10)
        return response

    def ok(self, method, path, body=None, **params):
        response = self.call(method, path, body, **params)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()

    def record_create(self, account, **values):
        return self.ok("POST", f"/accounts/{account.provider}/{account.account_id}/records", values)

    def record_update(self, account, record_id, **values):
        return self.ok("PATCH", f"/accounts/{account.provider}/{account.account_id}/records/{record_id}", values)

    def merge(self, account, primary_id, merged_id):
        body = {"primary_id": primary_id, "merged_id": merged_id}
        return self.ok("POST", f"/accounts/{account.provider}/{account.account_id}/merge", body)

    def wait(self, timeout=10):
        return self.ok("POST", "/webhooks/wait", {"timeout": timeout})


@pytest.fixture
def control(crm_sandbox):
    return Control(crm_sandbox)


class Receiver:
    """An HTTP server on a free loopback port that records what it is sent and answers ``statuses`` in turn."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answered first, one per request; then 200
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base_url + "/hooks/crm"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait_for(self, count, timeout=10.0):
        """Block until ``count`` requests arrived; return them all."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            assert len(self.requests) >= count, f"{len(self.requests)} of {count} deliveries arrived"
            return list(self.requests)

    def payloads(self):
        with self.lock:
            return [json.loads(item["body"]) for item in self.requests]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()
