"""``shopfloor form -c SITE --baseline FROM..TO --current FROM..TO -o form.docx [--xlsx F]``.

Exports the signed evidence bundle of the two periods (``--bundle``, default
``<form>-evidence.zip`` beside the form) and writes the draft of the 先进级 application form's
data parts from the table that bundle signs (:mod:`metrics.form`): every number's footnote
names the bundle, the snapshot row and the log leaves it comes from.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from edge.cli.keys import CliFail, guarded, load_site_or_fail


def _writable(path: Path, what: str) -> Path:
    if not path.parent.is_dir():
        raise CliFail(f"{what} {path}: the folder {path.parent} does not exist")
    return path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise CliFail(f"cannot write {path}: {exc.strerror or exc}") from None


def _form(args: argparse.Namespace) -> int:
    from edge.cli.export import signed_export
    from metrics import form
    from metrics.form_docx import to_docx

    site = load_site_or_fail(args.config)
    out = _writable(Path(args.output), "-o")
    xlsx = _writable(Path(args.xlsx), "--xlsx") if args.xlsx else None
    bpath = Path(args.bundle) if args.bundle else out.with_name(out.stem + "-evidence.zip")
    _writable(bpath, "--bundle")
    res = signed_export(site, args)
    ref = form.BundleRef.from_payload(bpath.name, hashlib.sha256(res.data).hexdigest(), res.payload)
    draft = form.build(site, res.table, ref)
    _write(bpath, res.data)
    _write(out, to_docx(draft))
    print(f"{out}: {len(form.numbered_notes(draft))} numbers with their footnotes")
    if xlsx is not None:
        _write(xlsx, form.to_xlsx(draft))
        print(f"{xlsx}: the same as a workbook")
    print(f"{bpath}: the evidence bundle the footnotes refer to (SHA-256 {ref.sha256})")
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "form", help="draft of the application form's data parts (DOCX/XLSX) from evidence"
    )
    p.add_argument("-c", "--config", required=True, help="site file")
    p.add_argument("--baseline", required=True, help="建设前 period FROM..TO")
    p.add_argument("--current", required=True, help="建成后 period FROM..TO")
    p.add_argument("-o", "--output", required=True, help="form draft (.docx)")
    p.add_argument("--xlsx", help="also write the draft as a workbook (.xlsx)")
    p.add_argument("--bundle", help="evidence bundle to write (default <form>-evidence.zip)")
    p.add_argument("--baseline-imported", action="store_true", help="baseline from imported data")
    p.add_argument("--current-imported", action="store_true", help="current from imported data")
    p.set_defaults(func=guarded(_form))
