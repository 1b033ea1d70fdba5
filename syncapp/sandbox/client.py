"""A client of the sandbox's control API, for the demo and the benchmark (a sandbox in this process or not)."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.conf import settings


def sandbox_api_allow(base_url: str) -> None:
    """Let connections send their tokens to the sandbox account at ``base_url``: its host and port only.

    CRM_API_ALLOWED_HOSTS is empty by default, so the demo and the benchmark allow their sandbox themselves.
    """
    entry = urlsplit(base_url).netloc
    if entry not in settings.CRM_API_ALLOWED_HOSTS:
        settings.CRM_API_ALLOWED_HOSTS = [*settings.CRM_API_ALLOWED_HOSTS, entry]


def sandbox_api_environ() -> dict[str, str]:
    """The environment that gives a worker process (qcluster) the hosts ``sandbox_api_allow`` added."""
    return {"CRM_API_ALLOWED_HOSTS": ",".join(settings.CRM_API_ALLOWED_HOSTS)}


class SandboxControlError(Exception):
    pass


class SandboxClient:
    def __init__(self, url: str, *, timeout: float = 120):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self.session.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SandboxControlError(f"The CRM sandbox at {self.url} is not reachable: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = {"message": response.text[:300]}
        if response.status_code >= 400:
            raise SandboxControlError(
                f"Sandbox {method} {path} answered {response.status_code}: {data.get('message', data)}"
            )
        return data

    def account_create(self, provider: str, **options) -> dict:
        return self._call("POST", "/accounts", {"provider": provider, **options})

    def accounts(self) -> list[dict]:
        return self._call("GET", "/accounts")["accounts"]

    def records(self, provider: str, account_id: str, *, include_deleted: bool = False) -> list[dict]:
        flag = "true" if include_deleted else "false"
        return self._call("GET", f"/accounts/{provider}/{account_id}/records?include_deleted={flag}")["records"]

    def record_create(self, provider: str, account_id: str, values: dict) -> dict:
        return self._call("POST", f"/accounts/{provider}/{account_id}/records", values)

    def records_load(self, provider: str, account_id: str, records: list[dict], *, age: float = 0) -> dict:
        """Load records without webhooks; ``age`` (seconds) backdates them."""
        body = {"records": records, "modified_seconds_ago": age}
        return self._call("POST", f"/accounts/{provider}/{account_id}/records/bulk", body)

    def record_update(self, provider: str, account_id: str, record_id: str, values: dict) -> dict:
        return self._call("PATCH", f"/accounts/{provider}/{account_id}/records/{record_id}", values)

    def record_delete(self, provider: str, account_id: str, record_id: str) -> dict:
        return self._call("DELETE", f"/accounts/{provider}/{account_id}/records/{record_id}")

    def record_restore(self, provider: str, account_id: str, record_id: str) -> dict:
        return self._call("POST", f"/accounts/{provider}/{account_id}/records/{record_id}/restore")

    def faults_set(self, **faults) -> dict:
        return self._call("PUT", "/faults", faults)

    def requests(self, after: int = 0) -> dict:
        return self._call("GET", f"/requests?after={after}")

    def webhooks(self) -> dict:
        return self._call("GET", "/webhooks")

    def webhooks_wait(self, timeout: float = 30) -> dict:
        try:
            return self._call("POST", "/webhooks/wait", {"timeout": timeout})
        except SandboxControlError:
            return self.webhooks()  # still busy after the timeout: report where it stands
