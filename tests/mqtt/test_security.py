"""TLS (test CA, client certificate) and username/password against a private mosquitto."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import ConnectorError
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto, Pki, mosquitto_binary, password_line

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


def _connector(port: int, **conn: object) -> MqttConnector:
    built = build(mqtt_site([device("sec1", port, [point("v", "sec/sec1/v", "/v")], **conn)]))
    assert isinstance(built[0], MqttConnector)
    return built[0]


def _client_ctx(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path_factory.mktemp("mq-tls"), pki=pki, require_certificate=True)
    mq.start()
    yield mq
    mq.stop()


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path_factory.mktemp("mq-auth"), users={"gateway": "s3cret-pw"})
    mq.start()
    yield mq
    mq.stop()


async def test_tls_with_the_test_ca_and_a_client_certificate(
    tls_broker: Mosquitto, pki: Pki
) -> None:
    conn = _connector(
        tls_broker.port,
        client_id="t-tls",
        clean_session=True,
        tls={
            "ca_file": str(pki.ca),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key),
        },
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("sec1") is True)
        with publisher(tls_broker.port, ssl_context=_client_ctx(pki)) as pub:
            pub("sec/sec1/v", json.dumps({"v": 4.25}), 1)
        await sink.wait_for(lambda: len(sink.samples) == 1)
    assert sink.samples[0].value == 4.25


async def test_tls_with_an_untrusted_server_is_a_clear_error(
    tls_broker: Mosquitto, pki: Pki
) -> None:
    conn = _connector(
        tls_broker.port,
        connect_timeout_s=5,
        tls={
            "ca_file": str(pki.other_ca),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key),
        },
    )
    with pytest.raises(ConnectorError, match=r"TLS handshake .* failed: .*CERTIFICATE_VERIFY"):
        await asyncio.wait_for(conn.run(RecordingSink()), 15)


async def test_tls_files_missing_is_a_clear_error(tls_broker: Mosquitto, tmp_path: Path) -> None:
    conn = _connector(tls_broker.port, tls={"ca_file": str(tmp_path / "nope.crt")})
    with pytest.raises(ConnectorError, match="TLS files"):
        await asyncio.wait_for(conn.run(RecordingSink()), 15)


async def test_username_password(auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_MQTT_PW", "s3cret-pw")
    conn = _connector(
        auth_broker.port,
        client_id="t-auth",
        clean_session=True,
        username="gateway",
        password={"env": "T_MQTT_PW"},
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("sec1") is True)
        with publisher(auth_broker.port, username="gateway", password="s3cret-pw") as pub:
            pub("sec/sec1/v", '{"v": 1}', 1)
        await sink.wait_for(lambda: len(sink.samples) == 1)


async def test_wrong_password_is_a_clear_error_without_the_secret(
    auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_MQTT_PW", "not-the-password")
    conn = _connector(
        auth_broker.port, username="gateway", password={"env": "T_MQTT_PW"}, connect_timeout_s=5
    )
    with pytest.raises(ConnectorError, match="refused the connection") as info:
        await asyncio.wait_for(conn.run(RecordingSink()), 15)
    assert "check username and password" in str(info.value)
    assert "not-the-password" not in str(info.value)


async def test_password_variable_missing_is_a_clear_error(
    auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("T_MQTT_PW_UNSET", raising=False)
    conn = _connector(auth_broker.port, username="gateway", password={"env": "T_MQTT_PW_UNSET"})
    with pytest.raises(ConnectorError, match="T_MQTT_PW_UNSET is not set"):
        await asyncio.wait_for(conn.run(RecordingSink()), 15)


async def test_password_file_written_without_mosquitto_passwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PBKDF2 fallback format of the test helper is what mosquitto accepts."""
    assert password_line("u", "p").startswith("u:$7$101$")
    mq = Mosquitto(tmp_path, users={"gw2": "pw-2"}, use_passwd_tool=False).start()
    try:
        monkeypatch.setenv("T_MQTT_PW2", "pw-2")
        conn = _connector(
            mq.port, client_id="t-auth2", username="gw2", password={"env": "T_MQTT_PW2"}
        )
        sink = RecordingSink()
        async with running(conn, sink):
            await sink.wait_for(lambda: sink.up("sec1") is True)
    finally:
        mq.stop()
