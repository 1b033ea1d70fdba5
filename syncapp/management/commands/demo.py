import json
import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from syncapp.sandbox.client import SandboxClient, SandboxControlError, sandbox_api_environ
from syncapp.sandbox.demo import AppServer, Demo
from syncapp.sandbox.server import SandboxServer


class Command(BaseCommand):
    help = (
        "Run the demo: tenant 'demo' synced with a sandbox HubSpot portal and Pipedrive company. Serves the web "
        "app, a django-q2 cluster and the sandbox, and keeps editing on the CRM side; --no-serve syncs once, "
        "checks that every side agrees and prints a JSON summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="Do the work once, print a summary and exit.")
        parser.add_argument("--contacts", type=int, default=24, help="Contacts per side (default 24).")
        parser.add_argument("--sandbox-url", default="", help="Use this running sandbox instead of starting one.")
        parser.add_argument("--host", default="127.0.0.1", help="Address the web app and sandbox listen on.")
        parser.add_argument(
            "--port", type=int, default=None, help="Web app port (default 8000; any free port with --no-serve)."
        )
        parser.add_argument(
            "--sandbox-port", type=int, default=8765, help="Sandbox port (default 8765; any free port with --no-serve)."
        )
        parser.add_argument(
            "--edit-every", type=float, default=20, help="Seconds between CRM-side edits while serving."
        )

    def handle(self, *args, no_serve, contacts, sandbox_url, host, port, sandbox_port, edit_every, **options):
        if settings.IS_PRODUCTION:
            raise CommandError(
                "The demo resets tenant 'demo' and makes user 'demo' a superuser: it does not run with "
                "DJANGO_ENV=production. Point it at a development database."
            )
        if contacts < 8:
            raise CommandError("--contacts must be at least 8, so that every side overlaps with the others.")
        logging.getLogger("django-q").setLevel(logging.WARNING)
        call_command("migrate", interactive=False, verbosity=0)
        # Short poll intervals, so a person watching sees polls arrive.
        settings.DEFAULT_SYNC_INTERVAL = 60_000
        settings.HUBSPOT_POLL_INTERVAL = 300_000
        # The demo user (staff) may point a connection at the sandbox from the Connect page.
        settings.CRM_API_BASE_OVERRIDE = True
        try:
            web = AppServer(host, port if port is not None else (0 if no_serve else 8000)).start()
            sandbox_server = None
            if not sandbox_url:
                sandbox_server = SandboxServer(host=host, port=0 if no_serve else sandbox_port).start()
                sandbox_url = sandbox_server.url
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}: {exc} (is another demo running? try --port)") from exc
        demo = Demo(sandbox=SandboxClient(sandbox_url), app_url=web.url, contacts=contacts)
        try:
            self._prepare(demo)
            if no_serve:
                self._once(demo)
            else:
                self._serve(demo, web, sandbox_url, edit_every)
        except SandboxControlError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            web.stop()
            if sandbox_server:
                sandbox_server.stop()

    def _prepare(self, demo: Demo) -> None:
        self.stderr.write(f"Seeding {demo.contacts} contacts per side and running the initial sync...")
        demo.reset_tenant()
        demo.connect()
        demo.seed()
        for run in demo.initial_sync():
            self.stderr.write(
                f"  {run.connection.provider}: initial sync {run.status}, created {run.created}, updated "
                f"{run.updated}, conflicts {run.conflicts}, API calls {run.api_calls}"
            )
        demo.quiesce()

    def _once(self, demo: Demo) -> None:
        edits = demo.edit_every_side()
        rounds = demo.quiesce()
        problems = demo.disagreements(edits["expect"], edits["deleted"])
        summary = demo.summary(problems, rounds=rounds)
        self.stdout.write(json.dumps(summary, indent=2))
        if problems:
            raise CommandError(f"{len(problems)} disagreements between the sides (the summary lists them).")

    def _serve(self, demo: Demo, web: AppServer, sandbox_url: str, edit_every: float) -> None:
        log = settings.BASE_DIR / "demo-qcluster.log"
        # A supervisor or `timeout` stops the demo with SIGTERM: stop the cluster as Ctrl-C does.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        cluster = None
        try:
            with open(log, "a") as output:
                cluster = subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=settings.BASE_DIR,
                    env={**os.environ, **sandbox_api_environ()},
                    stdout=output,
                    stderr=output,
                )
            self.stdout.write(
                "\ncontactsync demo is running.\n"
                f"  Status page: {web.url}/   log in as demo / {demo.password}\n"
                f"  Admin:       {web.url}/admin/   (the same login)\n"
                f"  CRM sandbox: {sandbox_url}/_sandbox/accounts\n"
                f"  django-q2 cluster log: {log}\n"
                f"A CRM-side edit every {edit_every:g} s; Ctrl-C stops everything.\n"
            )
            while True:
                time.sleep(edit_every)
                change = demo.random_crm_edit() if demo.rng.random() < 0.7 else demo.random_app_edit()
                self.stdout.write(f"[{time.strftime('%H:%M:%S')}] {change}")
        except KeyboardInterrupt:
            self.stdout.write("Stopping the demo.")
        finally:
            signal.signal(signal.SIGTERM, previous)
            if cluster:
                cluster.terminate()
                cluster.wait(timeout=30)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
