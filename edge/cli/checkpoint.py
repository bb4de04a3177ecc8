"""``shopfloor checkpoint``: issue a signed checkpoint now, give a witness its consistency
proof, and store a witness's cosignatures (``shopfloor run`` issues checkpoints on
``evidence.checkpoint_interval_s`` by itself)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.cli.keys import CliFail, guarded, load_site_or_fail, origin_of


def _checkpoint(args: argparse.Namespace) -> int:
    from edge.store import keys
    from edge.store.ledger import Ledger
    from metrics.evidence.note import encode_proof, open_checkpoint

    site = load_site_or_fail(args.config)
    ev = site.evidence
    path = site.resolve(ev.ledger_path)
    if not path.exists():
        raise CliFail(f"no ledger at {path}: run the collector with evidence enabled first")
    signer = keys.load_key(site.resolve(ev.key_dir))
    with Ledger(path) as led:
        if args.add_cosigned:
            text = Path(args.add_cosigned).read_text(encoding="utf-8")
            stored = led.add_cosigned(text, signer.verifier)
            print(f"stored cosignatures on the checkpoint of size {stored.size}")
            return 0
        note = led.issue_checkpoint(signer, origin_of(site))
        cp, _, _ = open_checkpoint(note, [signer.verifier])
        if args.output:
            Path(args.output).write_text(note, encoding="utf-8")
            print(f"checkpoint of size {cp.size} written to {args.output}")
        else:
            print(note, end="")
        if args.consistency_from is not None:
            old = args.consistency_from
            if not 0 <= old <= cp.size:
                raise CliFail(f"--consistency-from must be 0..{cp.size}")
            proof = encode_proof("consistency", old, cp.size, led.consistency_proof(old, cp.size))
            if not args.proof_out:
                raise CliFail("--consistency-from needs --proof-out FILE")
            Path(args.proof_out).write_text(proof, encoding="ascii")
            print(f"consistency proof {old} -> {cp.size} written to {args.proof_out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("checkpoint", help="issue a signed checkpoint of the ledger now")
    p.add_argument("-c", "--config", required=True, help="site file")
    p.add_argument("-o", "--output", help="write the checkpoint to this file")
    p.add_argument("--consistency-from", type=int, help="size the witness saw last")
    p.add_argument("--proof-out", help="write the consistency proof for the witness here")
    p.add_argument("--add-cosigned", help="store the cosignatures of this witnessed checkpoint")
    p.set_defaults(func=guarded(_checkpoint))
