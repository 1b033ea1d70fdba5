"""The connection lock under real concurrency: separate threads, separate database connections."""

import threading

import pytest
from django.db import connection as db_connection

from syncapp.exceptions import SyncAlreadyRunningError
from syncapp.services.connections import ConnectionLock


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_many_concurrent_syncs_gets_the_lock(tenant):
    from tests.helpers import make_connection

    connection, _ = make_connection(tenant)
    contenders = 8
    start = threading.Barrier(contenders)
    outcomes = []

    def contend():
        lock = ConnectionLock(connection)
        start.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except SyncAlreadyRunningError:
            outcomes.append("lost")
        finally:
            db_connection.close()

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["lost"] * (contenders - 1) + ["won"]
