"""``shopfloor witness``: run as a witness for other gateways (e.g. by the regulator).

``witness init --state DIR --name NAME`` creates the cosigning key; ``witness add-log --state
DIR KEY`` trusts a gateway's public key; ``witness cosign CHECKPOINT --proof FILE --state DIR``
verifies the checkpoint's signature and its consistency with the last checkpoint this witness
cosigned for that origin, then adds a cosignature/v1 line. The first checkpoint of an origin is
accepted on first sight (no earlier state to be consistent with).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli.keys import CliFail, guarded

if TYPE_CHECKING:
    from metrics.evidence.note import Verifier

# The key store and the note/merkle code (cryptography) load in the handlers: registering the
# command stays argparse-level so that ``shopfloor --help`` is fast on a small gateway.

LOGS = "logs.txt"


def _key_dir(state: Path) -> Path:
    return state / "key"


def _logs(state: Path) -> list[Verifier]:
    from metrics.evidence.note import Verifier

    path = state / LOGS
    if not path.exists():
        return []
    return [Verifier.parse(x) for x in path.read_text(encoding="ascii").split() if x]


def _state_file(state: Path, origin: str) -> Path:
    return state / "seen" / (hashlib.sha256(origin.encode()).hexdigest()[:24] + ".txt")


def _init(args: argparse.Namespace) -> int:
    from edge.store import keys

    state = Path(args.state)
    signer = keys.init_key(_key_dir(state), args.name, witness=True)
    print(f"witness key {signer.name} ({signer.verifier.key_hash})")
    print(f"  public (give to reviewers for trust.json, role witness): {signer.verifier}")
    return 0


def _add_log(args: argparse.Namespace) -> int:
    from metrics.evidence.note import ALG_ED25519, Verifier

    state = Path(args.state)
    v = Verifier.parse(args.key)
    if v.alg != ALG_ED25519:
        raise CliFail("a log key is an Ed25519 (type 0x01) verifier key")
    have = _logs(state)
    if v not in have:
        state.mkdir(parents=True, exist_ok=True)
        with (state / LOGS).open("a", encoding="ascii") as f:
            f.write(str(v) + "\n")
    print(f"trusting log key {v.name} ({v.key_hash})")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    from edge.store import keys
    from metrics.evidence import merkle
    from metrics.evidence.note import Checkpoint, cosign, decode_proof, open_checkpoint, parse_note

    state = Path(args.state)
    signer = keys.load_key(_key_dir(state))
    logs = _logs(state)
    if not logs:
        raise CliFail(f"no log key trusted yet: run 'shopfloor witness add-log --state {state}'")
    text = Path(args.checkpoint).read_text(encoding="utf-8")
    cp, _, _ = open_checkpoint(text, logs)
    sf = _state_file(state, cp.origin)
    if sf.exists():
        seen = sf.read_text(encoding="utf-8")
        old = Checkpoint.parse_text(parse_note(seen).text)
        if cp.size < old.size:
            raise CliFail(f"refused: size {cp.size} is older than the {old.size} already seen")
        if cp.size == old.size:
            if cp.root != old.root:
                raise CliFail("refused: same size, different root: the log forked")
        else:
            if not args.proof:
                raise CliFail(f"a consistency proof from size {old.size} is needed (--proof)")
            s1, s2, hashes = decode_proof(
                Path(args.proof).read_text(encoding="ascii"), "consistency"
            )
            if (s1, s2) != (old.size, cp.size):
                raise CliFail(f"the proof is for {s1} -> {s2}, needed {old.size} -> {cp.size}")
            try:
                merkle.verify_consistency(s1, s2, hashes, old.root, cp.root)
            except merkle.ProofError as exc:
                raise CliFail(f"refused: {exc}") from None
    cosigned = cosign(text, signer, int(time.time()))
    sf.parent.mkdir(parents=True, exist_ok=True)
    sf.write_text(cosigned, encoding="utf-8")
    if args.output:
        Path(args.output).write_text(cosigned, encoding="utf-8")
        print(f"cosigned {cp.origin} size {cp.size} -> {args.output}")
    else:
        print(cosigned, end="")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("witness", help="witness other gateways' logs: check and cosign")
    wsub = p.add_subparsers(dest="witness_command", metavar="ACTION")
    wsub.required = True
    i = wsub.add_parser("init", help="create the witness cosigning key")
    i.add_argument("--state", required=True, help="witness state directory")
    i.add_argument("--name", required=True, help="witness name, e.g. regulator.example/w1")
    i.set_defaults(func=guarded(_init))
    a = wsub.add_parser("add-log", help="trust a gateway's public key")
    a.add_argument("--state", required=True)
    a.add_argument("key", help="the gateway's verifier key (shopfloor keys show)")
    a.set_defaults(func=guarded(_add_log))
    c = wsub.add_parser("cosign", help="verify consistency and cosign a checkpoint")
    c.add_argument("checkpoint", help="checkpoint file (shopfloor checkpoint -o)")
    c.add_argument("--proof", help="consistency proof from the last size this witness saw")
    c.add_argument("--state", required=True)
    c.add_argument("-o", "--output", help="write the cosigned checkpoint here")
    c.set_defaults(func=guarded(_cosign))
