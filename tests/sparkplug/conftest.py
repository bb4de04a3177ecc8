"""A private mosquitto for the Sparkplug B tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mosquitto import Mosquitto, mosquitto_binary


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto (Debian package) is not installed")
    mq = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield mq
    mq.stop()
