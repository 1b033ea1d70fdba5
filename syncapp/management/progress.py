"""A progress bar on stderr for the long management commands (`sync`, `contacts import`).

Services take a ``progress`` callback and know nothing of the bar; a command wraps the callback in
a tqdm bar here.
"""

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand
from tqdm import tqdm


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Draw a progress bar on stderr, or with --no-progress never (default: only when stderr is a terminal).",
    )


@contextmanager
def progress_bar(
    command: BaseCommand, *, enabled: bool | None, unit: str, total: int | None = None
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback that advances a bar on the command's stderr by its argument, or None without a bar.

    ``enabled`` is the ``--progress`` option: None shows the bar only when stderr is a terminal.
    Without ``total`` the bar is a counter with a rate.
    """
    if enabled is None:
        enabled = command.stderr.isatty()
    if not enabled:
        yield None
        return
    # The wrapped stream: OutputWrapper would end each of tqdm's carriage-return redraws with a newline.
    with tqdm(total=total, unit=f" {unit}", file=command.stderr._out, dynamic_ncols=True) as bar:
        yield bar.update
