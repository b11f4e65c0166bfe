"""Fixtures of the webhook tests: a receiver on 127.0.0.1, an app that may send to it, and a short timeout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterbook.config import Settings
from tests.webhooks.receiver import Receiver, running_receiver


@pytest.fixture
def settings(database_url: str) -> Settings:
    # A receiver on this machine is a private destination: allowed here, and refused where a test says so.
    return Settings(
        database_url=database_url,
        migrate_on_start=False,
        max_body_bytes=64 * 1024,
        worker=False,
        webhook_allow_private=True,
        # Short, so that a test of a receiver too slow for it stays quick; long enough that a receiver thread
        # answering at once does not miss it on a machine busy with the whole suite.
        webhook_timeout_seconds=2.0,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running
