import json
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from syncdev.soak import Options, Soak, environment_problem

# A few minutes on two cores: what .ci/run runs.
REDUCED = {
    "tenants": 4,
    "min_contacts": 10,
    "max_contacts": 200,
    "duration": 100,
    "kills": 3,
    "edits_per_second": 3,
    "spacing": 60,
    "settle_timeout": 240,
    "poll_seconds": 60,
}


class Command(BaseCommand):
    help = (
        "Soak test: the Procfile's web process and several worker clusters against the CRM sandbox, with random "
        "edits on every side, faults and killed workers; checks that every side agrees at the end (docs/scaling.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reduced", action="store_true", help="The preset CI runs (a few minutes).")
        parser.add_argument("--tenants", type=int, default=50)
        parser.add_argument("--min-contacts", type=int, default=10)
        parser.add_argument("--max-contacts", type=int, default=20_000)
        parser.add_argument("--duration", type=float, default=600, help="Seconds of edits (default 600).")
        parser.add_argument("--fault-rate", type=float, default=0.1, help="Share of API requests faulted (0.1).")
        parser.add_argument("--kills", type=int, default=3, help="Workers killed with SIGKILL mid-sync (3).")
        parser.add_argument("--workers", type=int, default=3, help="Worker clusters, as separate processes (3).")
        parser.add_argument("--seed", type=int, default=12)
        parser.add_argument("--port", type=int, default=18300, help="The sandbox's port; the web process uses +1.")
        parser.add_argument("--edits-per-second", type=float, default=4)
        parser.add_argument(
            "--spacing", type=float, default=180, help="Seconds between two edits of one person, conflicts aside."
        )
        parser.add_argument(
            "--conflict-window", type=float, default=5, help="Edits of one field this close are a true conflict."
        )
        parser.add_argument("--settle-timeout", type=float, default=600)
        parser.add_argument("--poll-seconds", type=int, default=60, help="Poll interval (rounded to minutes).")
        parser.add_argument("--out", default="", help="Directory for logs and figures (default: a temporary one).")

    def handle(self, *args, **options):
        if problem := environment_problem(engine=settings.DATABASES["default"]["ENGINE"], redis_url=settings.REDIS_URL):
            raise CommandError(problem)
        if options["reduced"]:
            options.update(REDUCED)
        # The soak's own lines, not every task queued or CRM answer (the processes' logs are in --out).
        for name in ("django-q", "syncapp"):
            logging.getLogger(name).setLevel(logging.WARNING)
        out = Path(options["out"] or tempfile.mkdtemp(prefix="soak-"))
        call_command("migrate", verbosity=0)
        names = Options.__dataclass_fields__.keys() - {"out"}
        soak = Soak(Options(out=out, **{name: options[name] for name in names}), progress=self.stdout.write)
        verdict = soak.run()
        counts = verdict.counts()
        figures = {**soak.figures, "disagreements": counts}
        (out / "figures.json").write_text(json.dumps(figures, indent=2))
        self.stdout.write(json.dumps(figures, indent=2))
        for kind, items in vars(verdict).items():
            for item in items[:20]:
                self.stdout.write(f"{kind}: {item}")
        self.stdout.write(f"Logs and figures in {out}")
        if not verdict.ok:
            raise CommandError("The soak found disagreements: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        self.stdout.write(self.style.SUCCESS("Every side agrees: " + ", ".join(f"{k} 0" for k in counts)))
