"""The demo's web server works with DEBUG off, the default: its pages and the admin's static files are served."""

import pytest
import requests

from syncapp.sandbox.demo import AppServer


@pytest.mark.django_db(transaction=True)
def test_the_demo_serves_pages_and_static_files_without_debug(settings):
    assert settings.DEBUG is False
    web = AppServer("127.0.0.1", 0).start()
    try:
        login = requests.get(f"{web.url}/accounts/login/", timeout=10)
        admin_css = requests.get(f"{web.url}/static/admin/css/base.css", timeout=10)
    finally:
        web.stop()
    assert login.status_code == 200 and "Log in" in login.text
    assert admin_css.status_code == 200 and admin_css.headers["Content-Type"].startswith("text/css")
