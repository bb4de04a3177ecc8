"""The collector's evidence recorder takes the writer's columns: same leaves as without them."""

from __future__ import annotations

from pathlib import Path

from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.ledger import EvidenceRecorder, Ledger
from metrics.evidence import canonical


def _batches() -> list[Batch]:
    return [
        Batch(
            dev,
            seq,
            tuple(
                Sample(dev, f"p{i % 3}", seq * 1000 + i, float(i), Quality(i % 3), "x" * (i % 2))
                for i in range(7)
            ),
        )
        for seq in (1, 2)
        for dev in ("m1", "m2")
    ]


def test_recorder_with_columns_logs_the_same_leaves(tmp_path: Path) -> None:
    batches = _batches()
    plain = Ledger(tmp_path / "plain.db")
    with_cols = Ledger(tmp_path / "cols.db")
    try:
        EvidenceRecorder(plain, None, "o").stored(batches)
        rec = EvidenceRecorder(with_cols, None, "o")
        rec.stored_columns(batches, canonical.SampleColumns.of([b.samples for b in batches]))
        assert [lf.record for lf in with_cols.leaves()] == [lf.record for lf in plain.leaves()]
        assert len(plain.leaves()) == len(batches)
    finally:
        plain.close()
        with_cols.close()
