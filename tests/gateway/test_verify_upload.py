"""POST /api/v1/verify and the verify page: a zip bomb is refused with 413 while the gateway's
peak RSS stays bounded; a bundle with plausibility findings passes integrity and shows its
findings apart from the integrity checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.evidence import zipbomb
from tests.evidence.test_verdict import findings_bundle
from tests.gateway.support import Gateway

MIB = 1 << 20


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert m is not None, text
    return int(m.group(1))


def test_zip_bomb_is_refused_with_413_and_bounded_memory(gw: Gateway) -> None:
    data = zipbomb.bomb()  # < 1 MiB (the test site's upload limit), inflates to 1 GiB
    assert len(data) < MIB
    pid = gw.proc.pid
    with gw.client("viewer") as c:
        warm = c.post("/api/v1/verify", files={"bundle": ("w.zip", b"PK", "application/zip")})
        assert warm.status_code == 200, warm.text  # the verify path loaded before measuring
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
        before = _status_kib(pid, "VmRSS")
        r = c.post("/api/v1/verify", files={"bundle": ("bomb.zip", data, "application/zip")})
        peak = _status_kib(pid, "VmHWM")
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["detail"]
    # the 1 GiB member was never inflated: the peak grew by far less than it
    assert peak - before < 128 * 1024, (before, peak)


def test_findings_are_reported_apart_from_integrity(gw: Gateway, tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    tjson = json.dumps(trust.to_dict()).encode()
    with gw.client("viewer") as c:
        r = c.post(
            "/api/v1/verify",
            files={
                "bundle": ("f.zip", data, "application/zip"),
                "trust": ("trust.json", tjson, "application/json"),
            },
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["ok"] is True
        assert out["verdict"] == "findings"
        assert out["findings"] == 2
        rep = out["report"]
        assert {c["level"] for c in rep["checks"]} == {"integrity"}
        assert all(c["ok"] for c in rep["checks"])
        bad = [c for c in rep["plausibility"] if not c["ok"]]
        assert {c["severity"] for c in bad} == {"warning"}
        assert all(c["explain_en"] and c["explain_zh"] for c in bad)
        assert any("air-gapped" in c["explain_en"] for c in bad)

        page = c.post(
            "/verify",
            files={
                "bundle": ("f.zip", data, "application/zip"),
                "trust": ("trust.json", tjson, "application/json"),
            },
            headers={"Accept": "text/html"},
        )
    assert page.status_code == 200, page.text
    html = page.text
    assert 'data-verdict="findings"' in html
    findings = html[html.index('id="verify-findings"') : html.index('id="verify-integrity"')]
    assert findings.count('class="finding warning"') == 2
    # the page's language only (tests/gateway/test_verify_lang.py has the English page)
    assert "隔离网络" in findings
    integrity = html[html.index('id="verify-integrity"') :]
    integrity = integrity[: integrity.index("</table>")]
    assert "✘" not in integrity
