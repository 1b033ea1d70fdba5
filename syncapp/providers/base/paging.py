"""Read what changed since a time from a listing sorted by modification time, safely across writes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

Item = TypeVar("Item")
Stamp = TypeVar("Stamp")


def changed_since(
    fetch: Callable[[Any, str | None], tuple[list[Item], str | None]],
    *,
    since: Stamp,
    stamp: Callable[[Item], Stamp | None],
    identity: Callable[[Item], Hashable],
    past_cap: Callable[[int, Stamp], Stamp | None] = lambda reach, since: None,
) -> Iterator[tuple[list[Item], list[Item]]]:
    """Yield ``(page, fresh)`` for each page of the items modified at or after ``since``, oldest first.

    ``fetch(since, after)`` returns a page sorted by modification time ascending and the CRM's
    token for the next page (None at the end); ``fresh`` drops the items an earlier page returned.

    The caller writes between pages, and each write moves a record to the end of the order, so
    the CRM's next-page token, if it is an offset (HubSpot's search ``after``; Pipedrive does not
    say what its cursor is), would then skip as many records never read. So each page after the
    first is a new query from the previous page's latest time. Pages whose items all share the time
    their query started from cannot move the query on: those follow the token, and are held back
    until the listing leaves that time, so no write happens while an offset is in use.
    ``past_cap(reach, since)`` may return a later time to start from when the next page would
    reach ``reach`` results in one query, past what the CRM pages (HubSpot stops at 10,000).
    """
    seen: set[Hashable] = set()
    after, read_in_query, held = None, 0, []
    while True:
        page, next_after = fetch(since, after)
        held.append((page, [item for item in page if identity(item) not in seen]))
        seen.update(map(identity, page))
        more = bool(page and next_after and next_after != after)  # a repeated token would loop forever
        latest = stamp(page[-1]) if page else None
        moved_on = latest is not None and latest > since
        restart = None
        if more and not moved_on:
            read_in_query += len(page)
            restart = past_cap(read_in_query + len(page), since)
            if restart is None:
                after = next_after
                continue
        yield from held
        held = []
        if not more:
            return
        since, after, read_in_query = (latest if moved_on else restart), None, 0
