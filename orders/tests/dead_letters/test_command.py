"""`manage.py dlq` (orders/management/commands/dlq.py): list, show, redrive (by id, group, all), discard."""

import io

import pytest
from django.core.management import CommandError, call_command

from orders.models import DeadLetterStatus

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("dlq", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_list_shows_groups_and_rows(letter):
    output = run("list")
    assert "enrichment.enrich:rejected" in output
    assert str(letter.order_id) in output
    assert "1 dead letter(s)" in output


def test_show_prints_headers_and_body(letter):
    output = run("show", str(letter.pk))
    assert '"task": "enrichment.enrich"' in output and '"x-death"' in output and "orders.finalize" in output


def test_redrive_by_id_then_refused_the_second_time(letter, clean_queues):
    assert f"redriven {letter.pk}" in run("redrive", str(letter.pk))
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.REDRIVEN and letter.redriven_by.startswith("cli:")
    with pytest.raises(CommandError, match="nothing was redriven"):
        run("redrive", str(letter.pk))


def test_redrive_group_and_all(letter, clean_queues):
    assert "1 redriven" in run("redrive", "--group", "enrichment.enrich:rejected")
    assert "0 redriven" in run("redrive", "--all")


def test_redrive_needs_exactly_one_selector(letter):
    with pytest.raises(CommandError):
        run("redrive")
    with pytest.raises(CommandError):
        run("redrive", "1", "--all")


def test_discard_and_unknown_id(letter):
    assert f"discarded {letter.pk}" in run("discard", str(letter.pk))
    with pytest.raises(CommandError):
        run("show", "999999")
