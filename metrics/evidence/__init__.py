"""Evidence formats and checks (pure): Merkle proofs, canonical records, signed notes, DSSE,
KPI snapshots, bundles and the offline verifier."""
