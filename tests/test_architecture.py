"""Adding a CRM is one new folder under syncapp/providers/ (DESIGN.md): nothing outside a CRM's folder names it."""

import ast
from pathlib import Path

import pytest
from django.urls import reverse

import syncapp
from syncapp import providers
from syncapp.exceptions import ValidationError
from syncapp.providers import get_adapter_class, provider_ids
from syncapp.services.connections import api_base_validate
from syncapp.services.oauth import oauth_adapter

PACKAGE = Path(syncapp.__file__).parent
CRM_FOLDERS = sorted(
    path.parent.name for path in (PACKAGE / "providers").glob("*/adapter.py") if path.parent.name != "base"
)
# The sandbox is the CRMs' stand-in for tests and benchmarks; its webhook benchmark signs HubSpot's way.
OUTSIDE_THE_RULE = {PACKAGE / "sandbox"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_outside_a_crms_folder_imports_it():
    assert {"hubspot", "pipedrive"} <= set(CRM_FOLDERS)
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        folder = path.relative_to(PACKAGE).parts
        if any(parent in OUTSIDE_THE_RULE for parent in path.parents):
            continue
        own = folder[1] if folder[0] == "providers" and len(folder) > 2 else None
        for name in imported_modules(path):
            for crm in CRM_FOLDERS:
                if crm != own and (name == f"syncapp.providers.{crm}" or name.startswith(f"syncapp.providers.{crm}.")):
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


ADAPTER = """
from syncapp.providers.base import CrmAdapter
from syncapp.providers.base.oauth import OAuthConfig


class ExampleCrmAdapter(CrmAdapter):
    id = "examplecrm"
    name = "Example CRM"
    api_hosts = (".examplecrm.test",)
    oauth = OAuthConfig(
        provider_id="examplecrm",
        authorize_url="https://auth.examplecrm.test/authorize",
        token_url="https://auth.examplecrm.test/token",
        scopes=("contacts",),
        client_id_setting="EXAMPLECRM_CLIENT_ID",
        client_secret_setting="EXAMPLECRM_CLIENT_SECRET",
        client_auth="body",
    )

    @classmethod
    def oauth_account_id(cls, *, access_token, api_base_url):
        return "example-account"
"""


@pytest.fixture
def third_crm(tmp_path, monkeypatch):
    """A folder examplecrm/adapter.py added to syncapp.providers, and nothing else."""
    (tmp_path / "examplecrm").mkdir()
    (tmp_path / "examplecrm" / "__init__.py").write_text("")
    (tmp_path / "examplecrm" / "adapter.py").write_text(ADAPTER)
    monkeypatch.setattr(providers, "__path__", [*providers.__path__, str(tmp_path)])
    providers._folder_adapters.cache_clear()
    yield
    providers._folder_adapters.cache_clear()


def test_a_third_crm_folder_is_a_provider_with_its_oauth_and_hosts(third_crm, alice_client):
    assert provider_ids() == ["examplecrm", "hubspot", "memory", "pipedrive"]
    assert get_adapter_class("examplecrm").name == "Example CRM"
    assert (
        api_base_validate("https://acme.examplecrm.test/api", provider="examplecrm")
        == "https://acme.examplecrm.test/api"
    )
    with pytest.raises(ValidationError):  # its hosts are for its own connections only
        api_base_validate("https://acme.examplecrm.test/api", provider="hubspot")
    page = alice_client.get(reverse("syncapp:connect")).content.decode()
    assert 'id="provider-examplecrm"' in page and "Example CRM" in page


def test_every_adapter_with_an_oauth_app_says_whose_account_a_token_opens(third_crm):
    from syncapp.providers.base import CrmAdapter

    with_oauth = {pid: cls for pid, cls in providers.get_adapter_classes().items() if cls.oauth is not None}
    assert {"hubspot", "pipedrive", "examplecrm"} <= set(with_oauth)
    for provider_id, adapter_class in with_oauth.items():
        assert adapter_class.oauth_account_id.__func__ is not CrmAdapter.oauth_account_id.__func__, provider_id


def test_a_broken_adapter_entry_stops_only_its_own_provider(settings, alice_client):
    settings.SYNCAPP_PROVIDERS = {**settings.SYNCAPP_PROVIDERS, "mycrm": "myproject.crm.Missing"}

    assert alice_client.get(reverse("syncapp:connect")).status_code == 200
    assert oauth_adapter("hubspot") is get_adapter_class("hubspot")
    assert api_base_validate("https://api.hubapi.com", provider="hubspot") == "https://api.hubapi.com"


def test_a_crms_hosts_are_allowed_for_its_own_connections_only(settings):
    settings.CRM_API_ALLOWED_HOSTS = []
    assert api_base_validate("https://acme.pipedrive.com", provider="pipedrive") == "https://acme.pipedrive.com"
    with pytest.raises(ValidationError):
        api_base_validate("https://acme.pipedrive.com", provider="hubspot")
    with pytest.raises(ValidationError):
        api_base_validate("http://127.0.0.1:8765/hubspot/1", provider="hubspot")


@pytest.fixture
def alice_client(client, tenant):
    assert client.login(username="alice", password="pw-alice-123")
    return client
