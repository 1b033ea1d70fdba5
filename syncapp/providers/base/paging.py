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
    past_cap: Callable[[int, Stamp], Stamp | None] = lambda read, since: None,
) -> Iterator[tuple[list[Item], list[Item]]]:
    """Yield ``(page, fresh)`` for each page of the items modified at or after ``since``, oldest first.

    ``fetch(since, after)`` returns a page sorted by modification time ascending and the CRM's
    token for the next page (None at the end); ``fresh`` drops the items an earlier page returned.

    Each page after the first is a new query from the previous page's latest time, not the CRM's
    next-page token: the sync writes between pages, each write moves a record to the end of the
    order, and an offset (HubSpot's search ``after``; Pipedrive does not say what its cursor is)
    would then skip as many records never read. Only a page whose items all share the time it
    started from follows the token. ``past_cap(read, since)`` may return a later time to start
    from when a CRM refuses to page that far (HubSpot stops a query at 10,000 results).
    """
    seen: set[Hashable] = set()
    after, read_in_query = None, 0
    while True:
        page, next_after = fetch(since, after)
        fresh = [item for item in page if identity(item) not in seen]
        seen.update(map(identity, page))
        yield page, fresh
        if not next_after or not page or next_after == after:  # a repeated token would loop forever
            return
        latest = stamp(page[-1])
        if latest is not None and latest > since:
            since, after, read_in_query = latest, None, 0
            continue
        read_in_query += len(page)
        restart = past_cap(read_in_query + len(page), since)
        if restart is None:
            after = next_after
        else:
            since, after, read_in_query = restart, None, 0
