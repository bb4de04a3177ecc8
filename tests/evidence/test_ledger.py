"""The SQLite ledger: appends, proofs from the store, crash safety, gaps, checkpoints, keys."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connectors.base import Sample
from edge.store import keys
from edge.store.base import Batch
from edge.store.ledger import EvidenceRecorder, Ledger, LedgerError
from metrics.evidence import canonical, merkle, note


def _batch(source: str, seq: int, n: int = 3, t0: int = 0) -> Batch:
    return Batch(
        source, seq, tuple(Sample(source, "p", t0 + seq * 1000 + i, float(i)) for i in range(n))
    )


def test_append_matches_memory_tree_and_proofs(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", durable=False) as led:
        mem = merkle.MemoryTree()
        roots = {0: led.root()}
        for seq in range(1, 38):
            idxs = led.append_batches([_batch("a", seq), _batch("b", seq)])
            for i in idxs:
                mem.append(led.leaf(i).hash)
            roots[led.size] = led.root()
        assert led.size == len(mem) == 74
        assert led.root() == mem.root()
        for size, root in roots.items():
            assert led.root(size) == root == mem.root(size)
            merkle.verify_consistency(
                size, led.size, led.consistency_proof(size, led.size), root, led.root()
            )
        for idx in (0, 1, 33, 73):
            leaf = led.leaf(idx)
            assert leaf.hash == merkle.leaf_hash(leaf.record)
            merkle.verify_inclusion(
                idx, led.size, leaf.hash, led.inclusion_proof(idx, led.size), led.root()
            )
        rec = canonical.parse_canonical(led.leaf(0).record, "leaf")
        data = led.batch_data(0)
        assert rec["samples_sha256"] == canonical.sha256_hex(data)
        assert len(canonical.decode_samples(data)) == rec["count"] == 3
    with Ledger(tmp_path / "l.db") as again:  # reopened: same root, appends continue
        assert again.root() == mem.root()
        assert again.last_seq("a") == 37
        again.append_batches([_batch("a", 38)])
        mem.append(again.leaf(74).hash)
        assert again.root() == mem.root()


def test_gaps_duplicates_and_special_leaves(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", durable=False) as led:
        led.append_batches([_batch("a", 1), _batch("a", 2)])
        led.append_batches([_batch("a", 2)])  # replay
        led.append_batches([_batch("a", 5)])  # 3..4 missing
        kinds = [
            (lf.kind, canonical.parse_canonical(lf.record, "r").get("reason"))
            for lf in led.leaves()
        ]
        assert kinds == [
            ("batch", None),
            ("batch", None),
            ("gap", "duplicate_seq"),
            ("gap", "seq_gap"),
            ("batch", None),
        ]
        gap = canonical.parse_canonical(led.leaf(3).record, "r")
        assert (gap["from_seq"], gap["to_seq"]) == (3, 4)
        with pytest.raises(ValueError, match="unknown special leaf kind"):
            led.append_special("nonsense", {})
        with pytest.raises(LedgerError, match="not 99"):
            led.root(99)


def test_recorder_start_leaves_and_drops(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", durable=False) as led:
        rec = EvidenceRecorder(led, note.Signer.generate("shopfloor.local/t"), "shopfloor.local/t")
        rec.start({"site": 1}, {"oee.iso22400": 1})
        rec.start({"site": 1}, {"oee.iso22400": 1})  # unchanged: no new config/formula leaf
        rec.stored([_batch("a", 1)])
        rec.note_drops({"a": 4})
        rec.note_drops({"a": 4})
        rec.start({"site": 2}, {"oee.iso22400": 2})
        kinds = [lf.kind for lf in led.leaves()]
        assert kinds.count("config") == 2
        assert kinds.count("formula") == 2
        assert kinds.count("batch") == 1
        gaps = [canonical.parse_canonical(lf.record, "r") for lf in led.leaves(kind="gap")]
        assert [g["reason"] for g in gaps] == ["queue_drops", "restart"]
        assert gaps[0]["dropped"] == 4
        cp_text = rec.checkpoint()
        assert cp_text is not None
        cp, _, _ = note.open_checkpoint(cp_text, [rec.signer.verifier])  # type: ignore[union-attr]
        assert cp.size == led.size
        assert cp.root == led.root()
        assert led.latest_checkpoint().note == cp_text  # type: ignore[union-attr]


def test_cosignature_merged_into_stored_checkpoint(tmp_path: Path) -> None:
    signer = note.Signer.generate("log")
    wit = note.Signer.generate("w", note.ALG_COSIGNATURE_V1)
    with Ledger(tmp_path / "l.db", durable=False) as led:
        led.append_batches([_batch("a", 1)])
        cp = led.issue_checkpoint(signer, "log")
        stored = led.add_cosigned(note.cosign(cp, wit, 100), signer.verifier)
        _, _, ok = note.open_checkpoint(stored.note, [signer.verifier, wit.verifier])
        assert len(ok) == 2
        led.append_batches([_batch("a", 2)])
        other = note.sign_checkpoint(note.Checkpoint("log", 1, b"\x00" * 32), signer)
        with pytest.raises(LedgerError, match="root"):
            led.add_cosigned(other, signer.verifier)


def test_crash_mid_ingest_keeps_whole_groups(tmp_path: Path) -> None:
    """SIGKILL while appending: every group reported appended is there, root is consistent."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from connectors.base import Sample
        from edge.store.base import Batch
        from edge.store.ledger import Ledger
        led = Ledger({str(tmp_path / "c.db")!r})
        seq = 0
        while True:
            seq += 1
            samples = tuple(Sample("a", "p", seq * 10 + i, 1.0) for i in range(50))
            led.append_batches([Batch("a", seq, samples)])
            print(seq, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = 0
    for line in proc.stdout:
        acked = int(line)
        if acked >= 40:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    with Ledger(tmp_path / "c.db") as led:
        assert led.last_seq("a") >= acked
        assert led.root() == merkle.root_of([lf.hash for lf in led.leaves()])


def test_keys_init_load_rotate(tmp_path: Path) -> None:
    kd = tmp_path / "keys"
    s = keys.init_key(kd, "shopfloor.local/demo")
    assert stat.S_IMODE(kd.stat().st_mode) == 0o700
    assert stat.S_IMODE((kd / keys.KEY_FILE).stat().st_mode) == 0o600
    assert keys.load_key(kd) == s
    assert keys.load_public(kd) == s.verifier
    with pytest.raises(keys.KeyDirError, match="exists"):
        keys.init_key(kd, "x")
    rot = keys.rotate_key(kd)
    assert rot.old == s.verifier
    assert keys.load_key(kd).verifier == rot.new != rot.old
    assert keys.check_rotation(rot.statement, s.verifier) == rot.new
    assert keys.retired(kd) == [s.verifier]
    with pytest.raises(note.NoteError):
        keys.check_rotation(rot.statement, note.Signer.generate("other").verifier)
    os.chmod(kd / keys.KEY_FILE, 0o644)
    with pytest.raises(keys.KeyDirError, match="readable by others"):
        keys.load_key(kd)
    with pytest.raises(keys.KeyDirError, match="keys init"):
        keys.load_key(tmp_path / "none")
    with pytest.raises(keys.KeyDirError, match="name"):
        keys.init_key(tmp_path / "k2", "bad name")
