"""changed_since against a listing paged by offset that the reader's own writes reorder, as HubSpot's search is."""

from hypothesis import given, settings
from hypothesis import strategies as st

from syncapp.providers.base.paging import changed_since


class OffsetListing:
    """Records sorted by (modification time, id), paged by offset; writing one stamps it with a new time."""

    def __init__(self, times: list[int], page_size: int):
        self.times = dict(enumerate(times))
        self.page_size = page_size
        self.clock = max(times, default=0)
        self.calls = 0

    def fetch(self, since, after):
        self.calls += 1
        rows = sorted((time, record) for record, time in self.times.items() if time >= since)
        start = int(after or 0)
        page = [(record, time) for time, record in rows[start : start + self.page_size]]
        return page, str(start + self.page_size) if len(rows) > start + self.page_size else None

    def write(self, record: int) -> None:
        self.clock += 1
        self.times[record] = self.clock


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=4), max_size=30),  # few times: many ties
    page_size=st.integers(min_value=1, max_value=4),
    writes=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_every_record_is_read_although_the_reader_writes_between_pages(times, page_size, writes):
    listing = OffsetListing(times, page_size)
    read = set()

    for _, fresh in changed_since(listing.fetch, since=0, stamp=lambda item: item[1], identity=lambda item: item):
        for record, _ in fresh:
            read.add(record)
            if writes[record] and listing.times[record] <= 4:  # write each record once, like a push
                listing.write(record)

    assert read == set(range(len(times)))
    # Each record, and again each written one, costs at most two calls: no runaway paging.
    assert listing.calls <= 4 * len(times) + 2


def test_pages_at_one_time_are_held_until_the_listing_leaves_that_time():
    listing = OffsetListing([0, 1, 1, 1, 1, 1, 2], page_size=2)
    yielded_at_call = []

    for page, _ in changed_since(listing.fetch, since=0, stamp=lambda item: item[1], identity=lambda item: item):
        yielded_at_call.append((listing.calls, [record for record, _ in page]))

    # Call 1 moves the query to time 1; calls 2 to 4 page through time 1 by offset and come out together.
    assert yielded_at_call == [(1, [0, 1]), (4, [1, 2]), (4, [3, 4]), (4, [5, 6])]
