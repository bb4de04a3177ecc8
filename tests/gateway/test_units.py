"""Pure parts of the gateway: passwords, tokens, signed sessions, downsampling, presentation."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.auth import Signer, bearer_token, csrf_ok
from gateway.downsample import downsample
from gateway.jsonsafe import jsonable
from gateway.logs import JsonFormatter
from gateway.present import fmt_change, fmt_number, report_checks, table_rows
from gateway.users import UserDB, UserError, check_password, hash_password, token_digest
from gateway.views import state_name
from metrics.series import Series


def test_password_hash_round_trip_and_salt() -> None:
    a = hash_password("secret-password")
    b = hash_password("secret-password")
    assert a != b, "each hash has its own salt"
    assert a.startswith("scrypt$16384$8$1$")
    assert check_password("secret-password", a)
    assert not check_password("secret-passwore", a)
    assert not check_password("x", "not-a-hash")
    assert not check_password("x", "bcrypt$1$2$3$AA==$AA==")


def test_users_and_tokens_are_stored_hashed(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users.db")
    db.add_user("alice", "engineer", "alice-password")
    token = db.create_token("alice", "ci")
    raw = (tmp_path / "users.db").read_bytes()
    assert b"alice-password" not in raw
    assert token.encode() not in raw
    with sqlite3.connect(tmp_path / "users.db") as c:
        stored = c.execute("SELECT sha256 FROM tokens").fetchone()[0]
    assert stored == token_digest(token)
    user = db.user_for_token(token)
    assert user is not None
    assert user.role == "engineer"
    assert user.via == "token"
    assert db.authenticate("alice", "alice-password") is not None
    assert db.authenticate("alice", "wrong-password") is None
    assert db.authenticate("nobody", "alice-password") is None
    db.set_disabled("alice", True)
    assert db.authenticate("alice", "alice-password") is None
    assert db.user_for_token(token) is None
    db.set_disabled("alice", False)
    (info,) = db.tokens("alice")
    db.revoke_token(info.id)
    assert db.user_for_token(token) is None


def test_expired_token_is_refused(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users.db")
    db.add_user("bob", "viewer", "bob-password")
    token = db.create_token("bob", "short", ttl_days=1e-9)
    time.sleep(0.01)
    assert db.user_for_token(token) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: db.add_user("bad name", "viewer", "password1"), "user name"),
        (lambda db: db.add_user("carol", "root", "password1"), "unknown role"),
        (lambda db: db.add_user("carol", "viewer", "short"), "at least 8"),
        (lambda db: db.add_user("dup", "viewer", "password1"), "already exists"),
        (lambda db: db.set_role("ghost", "viewer"), "no user"),
        (lambda db: db.remove_user("ghost"), "no user"),
        (lambda db: db.create_token("ghost", "x"), "no user"),
        (lambda db: db.create_token("dup", ""), "token name"),
        (lambda db: db.revoke_token(999), "no token"),
    ],
)
def test_user_errors_are_clear(tmp_path: Path, call: object, message: str) -> None:
    db = UserDB(tmp_path / "users.db")
    db.add_user("dup", "viewer", "password1")
    with pytest.raises(UserError, match=message):
        call(db)  # type: ignore[operator]


def test_signing_secret_is_persistent(tmp_path: Path) -> None:
    a = UserDB(tmp_path / "u.db").signing_secret()
    b = UserDB(tmp_path / "u.db").signing_secret()
    assert a == b
    assert len(a) == 32


def test_session_cookie_tamper_and_expiry() -> None:
    s = Signer(b"k" * 32)
    cookie, session = s.new_session("alice", 60)
    assert s.read_session(cookie) == session
    body, mac = cookie.split(".")
    forged = Signer(b"k" * 32).sign("session", {"u": "admin", "exp": session.expires, "c": "x"})
    assert s.read_session(forged) is not None  # same key: valid
    assert Signer(b"j" * 32).read_session(cookie) is None  # other key
    assert s.read_session(body + "." + mac[:-2] + "AA") is None
    assert s.read_session("garbage") is None
    assert s.read_session("") is None
    # a session signature is not valid as a login-form token and the other way round
    pre, csrf = s.prelogin()
    assert s.read_session(pre) is None
    assert s.check_prelogin(pre, csrf)
    assert not s.check_prelogin(pre, csrf + "x")
    assert not s.check_prelogin(cookie, session.csrf)
    expired = s.sign("session", {"u": "alice", "exp": int(time.time()) - 1, "c": "x"})
    assert s.read_session(expired) is None
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "wrong")
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def _series(ts: list[int], values: list[float], q: list[int] | None = None) -> Series:
    return Series(
        np.array(ts, dtype=np.int64),
        np.array(values, dtype=np.float64),
        np.array(q or [0] * len(ts), dtype=np.uint8),
    )


def test_downsample_min_max_mean_last_per_bucket() -> None:
    s = _series([0, 1, 2, 5, 6, 9, 10], [1, 5, 3, 7, float("nan"), 2, 100], [0, 0, 0, 0, 0, 2, 0])
    b = downsample(s, 0, 10, 2)  # buckets [0,5) and [5,10); ts 10 is outside
    assert b.width_ns == 5
    assert b.count.tolist() == [3, 3]
    assert b.bad.tolist() == [0, 2]  # NaN and a bad-quality sample
    assert b.min.tolist() == [1, 7]
    assert b.max.tolist() == [5, 7]
    assert b.mean.tolist() == [3, 7]
    assert b.last.tolist() == [3, 7]


def test_downsample_empty_buckets_are_nan_and_bad_input_refused() -> None:
    b = downsample(_series([15], [4.0]), 0, 20, 4)
    assert b.count.tolist() == [0, 0, 0, 1]
    assert np.isnan(b.min[:3]).all()
    assert b.last[3] == 4.0
    with pytest.raises(ValueError, match="after start"):
        downsample(_series([], []), 10, 10, 3)
    with pytest.raises(ValueError, match="buckets"):
        downsample(_series([], []), 0, 10, 0)


def test_table_rows_labels_and_change() -> None:
    table = {
        "rows": [
            {
                "id": "rd_cycle",
                "label_zh": "产品研制周期",
                "label_en": "R&D cycle",
                "unit": "天",
                "mandatory": True,
                "provenance": "declared",
                "before": {"value": 160.0},
                "after": {"value": 121.0},
                "change": -0.24375,
                "change_label": "下降",
            },
            {"id": "x", "label_zh": "甲", "before": {"value": None}, "after": {"value": 1.5}},
        ]
    }
    zh = table_rows(table, "zh")
    assert zh[0]["label"] == "产品研制周期"
    assert zh[0]["change"] == "下降 24.4%"
    assert zh[0]["before"] == "160.0"  # 天: one decimal (metrics.formatting)
    assert zh[0]["provenance"] == "申报"
    assert zh[1]["before"] == "—"
    assert zh[1]["change"] == "—"
    assert table_rows(table, "en")[0]["label"] == "R&D cycle"
    assert table_rows(None, "zh") == []
    assert fmt_change(0.298, "提升") == "提升 29.8%"
    assert fmt_number(float("inf")) == "—"
    assert fmt_number(2.5e-06) == "0.00000250"  # never e-notation


def test_report_checks_flattens_lists_and_maps() -> None:
    rows = report_checks(
        {
            "checks": [
                {"name": "signature", "ok": True},
                {"name": "proof", "ok": False, "reason": "leaf 3"},
            ],
            "kpis": {"oee": {"ok": True, "detail": "same"}},
        }
    )
    assert [(r["name"], r["ok"]) for r in rows] == [
        ("signature", True),
        ("proof", False),
        ("oee", True),
    ]
    assert rows[1]["detail"] == "leaf 3"


def test_jsonable_handles_numpy_nan_and_nesting() -> None:
    out = jsonable(
        {"a": np.float64("nan"), "b": np.arange(2), "c": (1, float("inf")), "d": Path("x")}
    )
    assert out == {"a": None, "b": [0, 1], "c": [1, None], "d": "x"}
    json.dumps(out, allow_nan=False)


def test_state_name_of_raw_values() -> None:
    from config.models import Point

    p = Point(
        id="s",
        role="state",
        state_map={"0": "producing", "3": "down"},
        opcua={"node_id": "ns=2;i=1"},
    )
    assert state_name(p, 3.0) == "down"
    assert state_name(p, 7.0) is None
    assert state_name(p, float("nan")) is None


def test_json_logs_redact_secret_fields() -> None:
    rec = logging.makeLogRecord(
        {"msg": "login", "levelname": "INFO", "name": "t", "password": "hunter2", "user": "alice"}
    )
    line = json.loads(JsonFormatter().format(rec))
    assert line["password"] == "[redacted]"
    assert line["user"] == "alice"
