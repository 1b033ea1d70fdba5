"""The CRM sandbox: a threaded HTTP server with HubSpot and Pipedrive accounts side by side.

``/<provider>/<account id>`` is an account's base URL; below it the paths are the real API's.
``/_sandbox/`` is the control API (docs/sandbox.md). Faults (429, 5xx, slow answers, dropped
connections) and added latency apply to API requests, never to the control API.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

from syncapp.providers import get_adapter_classes

from .delivery import WebhookDispatcher
from .http import ApiError, Request, Response, mask_path

logger = logging.getLogger(__name__)

FAULT_KINDS = ("429", "500", "503", "slow", "drop")
REQUEST_LOG_MEMORY = 20_000  # requests kept for GET /_sandbox/requests
MAX_BODY = 20 * 1024 * 1024


def account_classes() -> dict[str, type]:
    """The sandbox account class of every configured provider that has one (``CrmAdapter.sandbox_class``)."""
    classes = {}
    for provider_id, adapter_class in get_adapter_classes().items():
        sandbox_path = getattr(adapter_class, "sandbox_class", "")
        if sandbox_path:
            classes[provider_id] = import_string(sandbox_path)
    return classes


@dataclass
class Faults:
    rate: float = 0.0  # share of API requests that fail
    latency_ms: int = 0  # added to every API request
    slow_ms: int = 3000  # how slow a "slow" fault is
    kinds: list[str] = field(default_factory=lambda: list(FAULT_KINDS))

    def validate(self) -> Faults:
        if not 0 <= self.rate <= 1:
            raise ValueError("fault rate must be between 0 and 1")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {', '.join(FAULT_KINDS)}")
        return self


class Sandbox:
    """The accounts, the request log, the faults and the webhook dispatcher; no sockets (see SandboxServer)."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        request_log: str | None = None,
        faults: Faults | None = None,
        webhook_target: str = "",
        webhook_secret: str = "",
    ):
        self.classes = account_classes()
        # The app's base URL and HubSpot app secret, the defaults of every new account's webhook options.
        self.webhook_target = webhook_target.rstrip("/")
        self.webhook_secret = webhook_secret
        self.accounts: dict[tuple[str, str], object] = {}
        self.random = random.Random(seed)
        self.faults = (faults or Faults()).validate()
        self.dispatcher = WebhookDispatcher(seed=seed)
        self.log_lock = threading.Lock()
        self.log: deque[dict] = deque(maxlen=REQUEST_LOG_MEMORY)
        self.log_sequence = 0
        self.log_file = open(request_log, "a", encoding="utf-8") if request_log else None  # noqa: SIM115
        self.base_url = ""
        self.next_account_id = 1000

    # Accounts ---------------------------------------------------------------------------

    def account_create(self, provider: str, *, account_id: str = "", webhook_target: str = "", **options):
        """A new account; ``webhook_target`` (the app's base URL) overrides the sandbox's for this account."""
        if provider not in self.classes:
            raise ApiError(
                400, {"message": f"Unknown provider {provider!r}; known: {', '.join(sorted(self.classes))}."}
            )
        if not isinstance(webhook_target, str):
            raise ApiError(400, {"message": "webhook_target must be a URL string."})
        target = webhook_target.rstrip("/") or self.webhook_target
        with self.log_lock:
            if not account_id:
                self.next_account_id += 1
                account_id = str(self.next_account_id)
            if (provider, account_id) in self.accounts:
                raise ApiError(409, {"message": f"The {provider} account {account_id} exists."})
            account_class = self.classes[provider]
            webhooks = options.setdefault("webhooks", {})
            webhooks.setdefault("secret", self.webhook_secret)
            if target and account_class.default_webhook_path:
                webhooks.setdefault("url", target + account_class.default_webhook_path)
            try:
                account = account_class(account_id=str(account_id), dispatcher=self.dispatcher, **options)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, {"message": str(exc)}) from None
            account.base_url = self.account_url(account)
            self.accounts[(provider, str(account_id))] = account
        return account

    def account(self, provider: str, account_id: str):
        try:
            return self.accounts[(provider, account_id)]
        except KeyError:
            raise ApiError(404, {"message": f"No {provider} account {account_id} in the sandbox."}) from None

    def account_url(self, account) -> str:
        return f"{self.base_url}/{account.provider}/{account.account_id}"

    def describe_account(self, account) -> dict:
        return {**account.describe(), "base_url": self.account_url(account)}

    # Requests -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        parts = request.path.split("/", 3)  # "", provider, account id, rest
        if len(parts) >= 2 and parts[1] == "_sandbox":
            from .control import control_handle

            return control_handle(self, request)
        if len(parts) < 3 or (parts[1], parts[2]) not in self.accounts:
            return Response.json(404, {"message": "Unknown sandbox account: use /<provider>/<account id>/..."})
        account = self.accounts[(parts[1], parts[2])]
        request.path = "/" + (parts[3] if len(parts) > 3 else "")
        response = self._fault(account, request)
        label = "fault"
        if response is None:
            response, label = account.handle(request)
        self._record(account, request, response, label)
        return response

    def _fault(self, account, request: Request) -> Response | None:
        faults = self.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if not faults.rate or self.random.random() >= faults.rate:
            return None
        kind = self.random.choice(faults.kinds)
        if kind == "slow":
            time.sleep(faults.slow_ms / 1000)
            return None
        if kind == "drop":
            return Response(status=0, drop=True)
        if kind == "429":
            return account.rate_limited(request).response()
        return Response.json(int(kind), {"status": "error", "message": f"Sandbox fault: {kind}", "success": False})

    def _record(self, account, request: Request, response: Response, label: str) -> None:
        # Secrets stay out of the log: a path's token segment and secret query and body values are masked.
        body_format, body = request.log_body()
        with self.log_lock:
            self.log_sequence += 1
            entry = {
                "seq": self.log_sequence,
                "time": time.time(),
                "provider": account.provider,
                "account_id": account.account_id,
                "method": request.method,
                "path": mask_path(account.routes, request.path),
                "endpoint": label,
                "query": request.log_query(),
                "body": body,
                "body_format": body_format,
                "status": response.status if not response.drop else "dropped",
            }
            self.log.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def log_path(self, path: str) -> str:
        """A full sandbox path (``/<provider>/<account id>/...``) with its secret segments masked."""
        provider, _, rest = path.lstrip("/").partition("/")
        account_id, _, rest = rest.partition("/")
        account_class = self.classes.get(provider)
        if account_class is None:  # the control API or an unknown provider: nothing secret
            return path
        return f"/{provider}/{account_id}" + mask_path(account_class.routes, "/" + rest)

    def requests_since(self, after: int = 0, **filters) -> list[dict]:
        with self.log_lock:
            return [
                entry
                for entry in self.log
                if entry["seq"] > after and all(entry.get(key) == value for key, value in filters.items() if value)
            ]

    def faults_set(self, **values) -> dict:
        self.faults = Faults(**{**asdict(self.faults), **values}).validate()
        return asdict(self.faults)

    def close(self) -> None:
        self.dispatcher.stop()
        if self.log_file:
            self.log_file.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the CRMs' APIs
    server_version = "contactsync-sandbox"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits ~40 ms for each answer.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._write(Response.json(413, {"message": "The request body is too large."}))
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = Request.build(
            method=self.command, path=url.path, query_string=url.query, headers=dict(self.headers), body=body
        )
        try:
            response = self.server.sandbox.handle(request)
        except ApiError as exc:
            response = exc.response()
        except Exception:
            logger.exception("sandbox: %s %s failed", self.command, url.path)
            response = Response.json(500, {"message": "The sandbox failed on this request (see its log)."})
        if response.drop:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_request(self, code="-", size="-") -> None:
        # Not the base class's raw request line: GET /oauth/v1/access-tokens/{token} carries a token.
        path = self.server.sandbox.log_path(urlsplit(getattr(self, "path", "")).path)  # unset for a bad request line
        logger.debug("sandbox: %s %s %s", self.command, path, code)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        # Only errors reach here now; their message can quote the raw request line, so it is left out.
        logger.debug("sandbox: HTTP error %s", args[0] if args else "")


class SandboxServer:
    """The sandbox on a loopback port, served from a background thread (tests, the demo, benchmarks)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **sandbox_options):
        self.sandbox = Sandbox(**sandbox_options)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.sandbox = self.sandbox
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.sandbox.base_url = self.url
        self.thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        # A short poll interval, so stop() (every test's teardown) does not wait half a second.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="crm-sandbox", daemon=True
        )
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
