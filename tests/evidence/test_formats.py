"""Canonical JSON and samples, signed notes, checkpoints, cosignatures, DSSE, trust.json."""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np
import pytest

from connectors.base import Quality, Sample
from metrics.evidence import canonical, dsse, note, trust


def test_canonical_json_has_no_floats_and_sorted_keys() -> None:
    out = canonical.canonical_json({"b": 1.5, "a": [1, 0.1, float("nan")], "c": (2,)})
    assert out == b'{"a":[1,"0.1","NaN"],"b":"1.5","c":[2]}'
    assert canonical.parse_canonical(out, "x") == json.loads(out)
    with pytest.raises(canonical.CanonicalError, match="canonical form"):
        canonical.parse_canonical(b'{"b":1, "a":2}', "x")
    with pytest.raises(canonical.CanonicalError, match="not valid JSON"):
        canonical.parse_canonical(b'{"a":', "x")
    with pytest.raises(TypeError):
        canonical.canonical_json({"a": object()})


def test_sample_encoding_round_trip_and_order_independence() -> None:
    samples = [
        Sample("cnc1", "state", 30, 0.0),
        Sample("cnc1", "good", 20, 5.0),
        Sample("cnc1", "state", 10, 3.0, Quality.UNCERTAIN),
        Sample("cnc1", "good", 10, float("nan"), Quality.BAD, "BadTimeout"),
    ]
    a = canonical.encode_samples(samples)
    b = canonical.encode_samples(list(reversed(samples)))
    assert a == b
    dec = canonical.decode_samples(a)
    assert dec.series == (("cnc1", "good"), ("cnc1", "state"))
    per = dec.per_series()
    assert per["cnc1", "state"].ts.tolist() == [10, 30]
    assert per["cnc1", "state"].values.tolist() == [3.0, 0.0]
    assert per["cnc1", "state"].quality.tolist() == [1, 0]
    assert np.isnan(per["cnc1", "good"].values[0])
    assert dec.statuses == {0: "BadTimeout"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"XFS1" + d[4:], "magic"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "unexpected bytes"),
    ],
)
def test_sample_decoding_rejects_bad_bytes(mutate: object, reason: str) -> None:
    data = canonical.encode_samples([Sample("d", "p", 1, 1.0), Sample("d", "p", 2, 2.0)])
    with pytest.raises(canonical.CanonicalError, match=reason):
        canonical.decode_samples(mutate(data))  # type: ignore[operator]


def test_sample_decoding_rejects_non_canonical_order() -> None:
    data = bytearray(canonical.encode_samples([Sample("d", "p", 1, 1.0), Sample("d", "p", 2, 2.0)]))
    ts_at = 4 + 4 + 2 + 1 + 2 + 1 + 4 + 8  # magic, nseries, "d", "p", n, index column
    data[ts_at : ts_at + 16] = np.array([2, 1], dtype="<i8").tobytes()
    with pytest.raises(canonical.CanonicalError, match="order"):
        canonical.decode_samples(bytes(data))


def test_key_id_follows_c2sp() -> None:
    s = note.Signer.generate("example.com/log")
    v = s.verifier
    want = hashlib.sha256(b"example.com/log\n\x01" + v.public).digest()[:4]
    assert v.key_id == want
    assert note.Verifier.parse(str(v)) == v
    assert note.Signer.parse(str(s)) == s
    assert "PRIVATE" not in repr(s)
    name, _, key = str(v).split("+", 2)
    with pytest.raises(note.NoteError, match="key id"):
        note.Verifier.parse(f"{name}+00000000+{key}")
    with pytest.raises(note.NoteError):
        note.Verifier.parse("garbage")


def test_checkpoint_sign_verify_and_cosign() -> None:
    log = note.Signer.generate("shopfloor.local/demo")
    other = note.Signer.generate("someone.else/log")
    wit = note.Signer.generate("regulator.example/w1", note.ALG_COSIGNATURE_V1)
    cp = note.Checkpoint("shopfloor.local/demo", 7, hashlib.sha256(b"r").digest(), ("time 5",))
    signed = note.sign_checkpoint(cp, log)
    assert signed.startswith(cp.text() + "\n\u2014 shopfloor.local/demo ")
    got, _, ok = note.open_checkpoint(signed, [log.verifier])
    assert got == cp
    assert got.time == 5
    assert ok[0].verifier == log.verifier
    # unknown signatures are ignored, a note nobody trusted signs is rejected
    with pytest.raises(note.NoteError, match="no trusted key"):
        note.open_checkpoint(signed, [other.verifier])
    cosigned = note.cosign(signed, wit, 1_700_000_000)
    _, _, ok = note.open_checkpoint(cosigned, [log.verifier, wit.verifier])
    assert {o.verifier.name for o in ok} == {log.name, wit.name}
    assert [o.timestamp for o in ok if o.verifier == wit.verifier] == [1_700_000_000]
    # a tampered size fails the log's signature
    forged = cosigned.replace("\n7\n", "\n8\n", 1)
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_checkpoint(forged, [log.verifier])
    merged = note.merge_signatures(signed, cosigned)
    assert merged == cosigned


def test_proof_text_round_trip_and_errors() -> None:
    h = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    text = note.encode_proof("consistency", 3, 9, h)
    assert note.decode_proof(text, "consistency") == (3, 9, h)
    with pytest.raises(note.NoteError, match="first line"):
        note.decode_proof("inclusion 3 9\n", "consistency")
    with pytest.raises(note.NoteError, match="base64"):
        note.decode_proof("consistency 3 9\n@@@\n", "consistency")


def test_dsse_round_trip_and_failures() -> None:
    k = note.Signer.generate("gw")
    other = note.Signer.generate("gw2")
    env = dsse.sign_envelope(b'{"a":1}', dsse.SNAPSHOT_TYPE, [k])
    opened = dsse.open_envelope(env, [k.verifier])
    assert opened.payload == b'{"a":1}'
    with pytest.raises(dsse.DsseError, match="no trusted key"):
        dsse.open_envelope(env, [other.verifier])
    with pytest.raises(dsse.DsseError, match="payload type"):
        dsse.open_envelope(env, [k.verifier], "application/other")
    obj = json.loads(env)
    obj["payload"] = base64.b64encode(b'{"a":2}').decode()
    from rfc8785 import dumps

    with pytest.raises(dsse.DsseError, match="does not verify"):
        dsse.open_envelope(dumps(obj), [k.verifier])
    assert dsse.pae("t", b"xy") == b"DSSEv1 1 t 2 xy"


def test_trust_parsing_and_errors() -> None:
    gw = note.Signer.generate("gw").verifier
    w = note.Signer.generate("w", note.ALG_COSIGNATURE_V1).verifier
    doc = {
        "version": 1,
        "keys": [
            {"role": "gateway", "key": str(gw), "not_before": "2026-01-01T00:00:00Z"},
            {"role": "witness", "key": str(w), "not_after": "2027-01-01T00:00:00Z"},
        ],
    }
    t = trust.parse_trust(json.dumps(doc))
    assert t.witness_quorum == 1
    assert t.entry(gw).valid_at(1_800_000_000)
    assert not t.entry(gw).valid_at(1_700_000_000)
    assert trust.parse_trust(json.dumps(t.to_dict())) == t
    bad_cases = [
        ("{", "not valid JSON"),
        (json.dumps({"version": 2}), "version"),
        (json.dumps({"version": 1, "keys": []}), "non-empty"),
        (json.dumps({"version": 1, "keys": [{"role": "boss", "key": str(gw)}]}), "role"),
        (json.dumps({"version": 1, "keys": [{"role": "gateway", "key": str(w)}]}), "type"),
        (json.dumps({"version": 1, "keys": [{"role": "gateway", "key": "x"}]}), "key"),
        (
            json.dumps({"version": 1, "keys": [{"role": "gateway", "key": str(gw), "x": 1}]}),
            "unknown",
        ),
        (
            json.dumps(
                {"version": 1, "keys": [{"role": "gateway", "key": str(gw), "not_before": "x"}]}
            ),
            "RFC 3339",
        ),
        (json.dumps({"version": 1, "keys": [{"role": "witness", "key": str(w)}]}), "no gateway"),
        (json.dumps({**doc, "witness_quorum": 3}), "quorum"),
    ]
    for text, reason in bad_cases:
        with pytest.raises(trust.TrustError, match=reason):
            trust.parse_trust(text)


def test_fast_canonical_json_equals_rfc8785() -> None:
    import rfc8785

    objs = [
        {"b": '中文\x01\n\t"\\', "a": [1, 2, {"z": None, "y": True}], "c": 2**53 - 1},
        {"e": "\u2028\ud7ff\U0001f600", "f": "\x7f", "g": -(2**53) + 1, "h": 2**60},
        {"键": "值", "a": 1.25, "\U0001f600": 1, "\ue000": 2},
    ]
    for o in objs:
        assert canonical.canonical_json(o) == rfc8785.dumps(canonical.jsonable(o))
