"""Size limits of reading a bundle: a zip bomb is refused before it is inflated (declared size)
or while it is inflated in bounded chunks (a header that lies), and ``shopfloor verify`` exits
2 with one line for it."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.cli.main import main
from metrics.evidence import bundle, note
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import verify_bundle
from tests.evidence import zipbomb

GIB = 1 << 30
MIB = 1 << 20


def _peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()``'s result (or exception) and the peak of Python allocations while it ran."""
    tracemalloc.start()
    try:
        try:
            out: Any = fn()
        except Exception as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bomb_is_a_megabyte_that_inflates_to_a_gibibyte() -> None:
    import zlib

    data = zipbomb.zeros_deflate(GIB)
    assert len(data) < MIB
    d = zlib.decompressobj(-15)
    assert len(d.decompress(data, 64 * MIB)) == 64 * MIB  # (a sample: it really inflates)


def test_declared_gibibyte_is_refused_before_inflating() -> None:
    data = zipbomb.bomb()
    assert len(data) < MIB
    out, peak = _peak(lambda: bundle.read_files(data, max_total=512 * MIB))
    assert isinstance(out, bundle.BundleTooLarge), out
    assert "uncompressed" in str(out)
    assert peak < 8 * MIB, peak
    with pytest.raises(bundle.BundleTooLarge):
        verify_bundle(data, make_trust([]), max_total=512 * MIB)


def test_lying_header_is_inflated_in_bounded_chunks() -> None:
    """The header says 1 KiB, the stream inflates to 1 GiB: zipfile stops at the declared
    size, we read 1 MiB at a time, the CRC does not match: a corrupt bundle, little memory."""
    data = zipbomb.bomb(declared=1024)
    out, peak = _peak(lambda: bundle.read_files(data))
    assert isinstance(out, bundle.BundleError)
    assert not isinstance(out, bundle.BundleTooLarge)
    assert "corrupt" in str(out)
    assert peak < 16 * MIB, peak
    rep, peak = _peak(lambda: verify_bundle(data, make_trust([])))
    assert not rep.ok
    assert rep.verdict == "failed"
    assert peak < 16 * MIB, peak


def test_too_many_members_is_refused() -> None:
    data = zipbomb.zip_raw([zipbomb.small(f"f{i}") for i in range(bundle.MAX_MEMBERS + 1)])
    with pytest.raises(bundle.BundleTooLarge, match="entries"):
        bundle.read_files(data)


def test_cli_refuses_the_bomb_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = tmp_path / "bomb.zip"
    z.write_bytes(zipbomb.bomb())
    trust = tmp_path / "trust.json"
    key = TrustedKey("gateway", note.Signer.generate("shopfloor.local/t").verifier)
    trust.write_text(json.dumps(make_trust([key]).to_dict()), encoding="utf-8")
    assert main(["verify", str(z), "--trust", str(trust), "--max-mb", "512"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "--max-mb" in err
    assert "\n" not in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["verify", str(z), "--trust", str(trust), "--max-mb", "0"])
    assert exited.value.code == 2
