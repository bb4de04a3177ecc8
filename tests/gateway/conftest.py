from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.support import Gateway, start_gateway, stop_gateway


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(tmp_path_factory.mktemp("gw"), max_upload_mb=1)
    try:
        yield g
    finally:
        stop_gateway(g)
