import pytest
from django.core import signals
from django.db import close_old_connections


@pytest.fixture
def in_process_requests():
    """The WSGI handler closes "old" connections at request start/end; inside the test's transaction
    that would mark it for rollback. Django's own test client disconnects the same receivers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
