"""Private mosquitto brokers for the MQTT tests (module-scoped where tests can share one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mosquitto import Mosquitto, Pki, make_pki, mosquitto_binary


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto (Debian package) is not installed")
    mq = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield mq
    mq.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
