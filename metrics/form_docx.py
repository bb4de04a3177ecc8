"""Write a :class:`metrics.form.FormDraft` as a Word document (pure, standard library only).

WordprocessingML in a zip (ECMA-376): ``word/document.xml`` with the headings, paragraphs and a
bordered table, ``word/footnotes.xml`` with one real footnote per number (Word shows them at
the page's foot with superscript references). Written with fixed zip timestamps, so the same
draft gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

from metrics.form import Block, FormDraft, Para

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FONT = '<w:rFonts w:ascii="SimSun" w:hAnsi="SimSun" w:eastAsia="SimSun"/>'

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/footnotes.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.footnotes+xml"/>'
    '<Override PartName="/word/settings.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.settings+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)
DOC_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/footnotes" Target="footnotes.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/settings" Target="settings.xml"/>'
    "</Relationships>"
)
SETTINGS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<w:settings xmlns:w="{W_NS}"><w:footnotePr><w:footnote w:id="-1"/>'
    '<w:footnote w:id="0"/></w:footnotePr></w:settings>'
)


def _t(text: str) -> str:
    return f'<w:t xml:space="preserve">{escape(text)}</w:t>'


class _Writer:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def runs(self, para: Para, *, bold: bool = False, size: int | None = None) -> str:
        rpr = _FONT + ("<w:b/>" if bold else "") + (f'<w:sz w:val="{size}"/>' if size else "")
        out = []
        for r in para:
            if r.text:
                out.append(f"<w:r><w:rPr>{rpr}</w:rPr>{_t(r.text)}</w:r>")
            if r.note is not None:
                self.notes.append(r.note)
                nid = len(self.notes)
                out.append(
                    f'<w:r><w:rPr>{_FONT}<w:vertAlign w:val="superscript"/></w:rPr>'
                    f'<w:footnoteReference w:id="{nid}"/></w:r>'
                )
        return "".join(out)

    def para(self, para: Para, *, bold: bool = False, size: int | None = None) -> str:
        return f"<w:p>{self.runs(para, bold=bold, size=size)}</w:p>"

    def table(self, block: Block) -> str:
        border = "".join(
            f'<w:{side} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
            for side in ("top", "left", "bottom", "right", "insideH", "insideV")
        )
        widths = (700, 3900, 2300, 2300)
        grid = "".join(f'<w:gridCol w:w="{w}"/>' for w in widths)
        rows = []
        for i, row in enumerate(block.rows):
            cells = "".join(
                f'<w:tc><w:tcPr><w:tcW w:w="{widths[min(j, 3)]}" w:type="dxa"/></w:tcPr>'
                f"{self.para(c, bold=i == 0)}</w:tc>"
                for j, c in enumerate(row)
            )
            head = "<w:trPr><w:tblHeader/></w:trPr>" if i == 0 else ""
            rows.append(f"<w:tr>{head}{cells}</w:tr>")
        return (
            f'<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/><w:tblBorders>{border}'
            f"</w:tblBorders></w:tblPr><w:tblGrid>{grid}</w:tblGrid>{''.join(rows)}</w:tbl>"
        )

    def document(self, draft: FormDraft) -> str:
        body = []
        for b in draft.blocks:
            if b.kind == "heading":
                body.append(self.para(b.runs, bold=True, size=28))
            elif b.kind == "table":
                body.append(self.table(b))
            else:
                body.append(self.para(b.runs))
        sect = (
            '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1440" w:right="1440" '
            'w:bottom="1440" w:left="1440" w:header="851" w:footer="992" w:gutter="0"/></w:sectPr>'
        )
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<w:document xmlns:w="{W_NS}" xmlns:r="{R_NS}"><w:body>{"".join(body)}{sect}'
            "</w:body></w:document>"
        )

    def footnotes(self) -> str:
        sep = (
            '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
            '</w:footnote><w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r>'
            "<w:continuationSeparator/></w:r></w:p></w:footnote>"
        )
        notes = "".join(
            f'<w:footnote w:id="{i}"><w:p><w:r><w:rPr>{_FONT}<w:vertAlign w:val="superscript"/>'
            f'</w:rPr><w:footnoteRef/></w:r><w:r><w:rPr>{_FONT}<w:sz w:val="18"/></w:rPr>'
            f"{_t(' ' + text)}</w:r></w:p></w:footnote>"
            for i, text in enumerate(self.notes, start=1)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<w:footnotes xmlns:w="{W_NS}" xmlns:r="{R_NS}">{sep}{notes}</w:footnotes>'
        )


def to_docx(draft: FormDraft) -> bytes:
    """The DOCX bytes of the draft."""
    w = _Writer()
    document = w.document(draft)
    parts = {
        "[Content_Types].xml": CONTENT_TYPES,
        "_rels/.rels": ROOT_RELS,
        "word/document.xml": document,
        "word/_rels/document.xml.rels": DOC_RELS,
        "word/footnotes.xml": w.footnotes(),
        "word/settings.xml": SETTINGS,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode("utf-8"))
    return buf.getvalue()
