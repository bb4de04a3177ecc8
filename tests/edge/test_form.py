"""``shopfloor form``: the application form's data parts filled from a signed bundle.

The golden file is the text a reader extracts from the DOCX (paragraphs, table rows with
`` | `` between cells, ``[n]`` at each footnote reference, the footnotes at the end) for a
pinned recording (tests/evidence/factory.py's samples in memory) and a pinned bundle reference;
``UPDATE_GOLDEN=1`` rewrites it. The end-to-end test runs the command on a real ledger and
checks that every footnote's leaves are in the bundle it wrote."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from openpyxl import load_workbook

from config.loader import load_site_text
from edge.cli.main import main
from metrics import form
from metrics.engine import compute_table
from metrics.evidence.snapshot import LeafRef
from metrics.form_docx import to_docx
from tests.evidence import factory
from tests.metrics.memreader import MemReader

GOLDEN = Path(__file__).parent.parent / "golden" / "form" / "tiny.txt"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
SCENARIOS = """  scenarios:
    - {entry: 生产作业-设备运行监控-数控车床联网与状态监控, evidence: [cnc1, cnc2]}
    - {entry: 生产作业-在线智能检测-车削件尺寸在线检测, uses_ai: true, evidence: [cnc1/scrap]}
    - {entry: 生产管理-能源智能管控-车间电能在线监测, evidence: [meter1]}
    - {entry: 运营管理-数智精益管理-OEE看板与损失分析, uses_ai: true}
    - {entry: 生产作业-能源智能管控-挂错环节的场景, evidence: [cnc9]}
"""
FORM_ROWS = [
    "*关键设备数控化率",
    "*关键设备联网率",
    "*全员劳动生产率",
    "*生产效率",
    "*资源综合利用率",
    "*产品研制周期",
    "*运营成本",
    "*产品不良品率",
    "*人均销售额",
    "*设备综合利用率",
    "库存周转率",
    "供应商准时交付率",
    "*订单准时达成率",
    "先进过程控制投用率",
    "*单位产值综合能耗",
    "单位产值碳排放量",
    "一般固废综合利用率",
    "水资源重复利用率",
    "先进制造模式/解决方案面向供应链上下游复制推广的企业数量",
    "*应用人工智能技术场景比例",
    "*工厂应用人工智能模型数量",
    "*工业总产值",
]


def docx_text(data: bytes) -> str:
    """The text of a DOCX as a reader sees it (see the module docstring)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        doc = ET.fromstring(z.read("word/document.xml"))
        notes = ET.fromstring(z.read("word/footnotes.xml"))

    def para(p: ET.Element) -> str:
        out = []
        for el in p.iter():
            if el.tag == f"{W}t":
                out.append(el.text or "")
            elif el.tag == f"{W}footnoteReference":
                out.append(f"[{el.get(f'{W}id')}]")
        return "".join(out)

    lines = []
    body = doc.find(f"{W}body")
    assert body is not None
    for el in body:
        if el.tag == f"{W}p":
            lines.append(para(el))
        elif el.tag == f"{W}tbl":
            for tr in el.findall(f"{W}tr"):
                cells = [
                    "".join(para(p) for p in tc.findall(f"{W}p")) for tc in tr.findall(f"{W}tc")
                ]
                lines.append(" | ".join(cells))
    lines.append("")
    for fn in notes.findall(f"{W}footnote"):
        nid = int(fn.get(f"{W}id", "0"))
        if nid >= 1:
            lines.append(f"[{nid}]" + "".join(t.text or "" for t in fn.iter(f"{W}t")))
    return "\n".join(lines) + "\n"


def _pinned() -> tuple[form.FormDraft, bytes]:
    site = load_site_text(factory.SITE_YAML + SCENARIOS, "tiny.yaml")
    base, cur = factory.periods(site)
    by: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for seed, p, q in ((7, base, 0.95), (8, cur, 0.98)):
        for s in factory.generate(seed, p.start_ns, p.end_ns, q):
            by[(s.device, s.point)].append((s.ts, s.value))
    rd = MemReader()
    for (dev, pt), rows in by.items():
        rd.add(dev, pt, [t for t, _ in rows], [v for _, v in rows])
    table = compute_table(rd, site, base, cur)
    batches = tuple(
        LeafRef(i, f"{i:064x}", "batch", f"{src}:cnc{i % 2 + 1}", i, p.start_ns - 1, p.end_ns, 9)
        for i, p, src in (
            (3, base, "import"),
            (4, base, "import"),
            (7, cur, "opcua"),
            (8, cur, "opcua"),
            (9, cur, "opcua"),
        )
    )
    specials = (LeafRef(0, "0" * 64, "config"), LeafRef(1, "1" * 64, "formula"))
    ref = form.BundleRef("tiny-evidence.zip", "ab" * 32, "shopfloor.local/tiny", 12, batches,
                         specials)  # fmt: skip
    draft = form.build(site, table, ref)
    return draft, to_docx(draft)


def test_docx_text_matches_golden() -> None:
    draft, data = _pinned()
    text = docx_text(data)
    assert text == form.to_text(draft)  # the same reading as to_text
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert to_docx(draft) == data  # deterministic bytes


def test_form_layout_rows_marks_and_lists() -> None:
    _draft, data = _pinned()
    lines = docx_text(data).splitlines()
    head = lines.index("序号 | 指标 | 建设前 | 建成后")
    rows = [ln.split(" | ") for ln in lines[head + 1 : head + 24]]
    assert [r[0] for r in rows] == [str(n) for n in range(1, 24)]
    assert [r[1] for r in rows[:22]] == FORM_ROWS
    assert rows[22][1].startswith("其他成效指标")
    for r in rows:  # every number carries a footnote
        for cell in r[2:]:
            assert re.fullmatch(r"([^\[\]]*\[\d+\])+", cell), cell
    notes = {int(m[1]): m[2] for ln in lines if (m := re.match(r"\[(\d+)\](.*)", ln))}
    out_before = int(re.findall(r"\[(\d+)\]", rows[21][2])[0])
    assert "：申报" in notes[out_before]
    assert "2026年1月财务报表" in notes[out_before]
    assert "配置叶 #0" in notes[out_before]
    assert "数据叶" not in notes[out_before]
    oee_after = int(re.findall(r"\[(\d+)\]", rows[9][3])[0])
    assert "：实测" in notes[oee_after]
    assert "数据叶 #7–#9（3 个批次）" in notes[oee_after]
    assert "tiny-evidence.zip" in notes[oee_after]
    assert "oee.after" in notes[oee_after]
    text = "\n".join(lines)
    assert "1.生产作业-设备运行监控-数控车床联网与状态监控" in text
    ai = lines[lines.index("应用人工智能技术的具体场景") + 1 :]
    assert ai[0] == "1.生产作业-在线智能检测-车削件尺寸在线检测"
    assert ai[1] == "2.运营管理-数智精益管理-OEE看板与损失分析"
    assert re.search(
        r"5\.生产作业-能源智能管控-挂错环节的场景\[\d+\]", text
    )  # register problems footnoted
    effects = lines[lines.index("已实施成效") + 1 :]
    monitor = next(e for e in effects if e.startswith("生产作业-设备运行监控-数控车床"))
    assert "关键设备联网率由建设前" in monitor
    assert "设备综合利用率由建设前" in monitor
    assert not any(e.startswith("运营管理-数智精益管理") for e in effects)  # not data-backed


def test_cli_writes_docx_xlsx_and_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = factory.build(tmp_path)
    site_file = tmp_path / "tiny.yaml"
    site_file.write_text(
        factory.SITE_YAML
        + "storage: {kind: sqlite, path: store.db}\n"
        + "evidence: {ledger_path: ledger.db, key_dir: keys}\n",
        encoding="utf-8",
    )
    out = tmp_path / "form.docx"
    code = main(["form", "-c", str(site_file), "--baseline", factory.BASELINE,
                 "--current", factory.CURRENT, "-o", str(out), "--xlsx",
                 str(tmp_path / "form.xlsx")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    bundle = tmp_path / "form-evidence.zip"
    assert bundle.exists()
    assert b.ledger_path.exists()
    text = docx_text(out.read_bytes())
    with zipfile.ZipFile(bundle) as z:
        leaves = {e["index"] for e in json.loads(z.read("log/leaves.json"))}
    cited = {int(n) for rng in re.findall(r"数据叶 ([#\d–, ]+)", text)
             for part in rng.split(", ") for n in part.replace("#", "").split("–")}  # fmt: skip
    assert cited
    assert cited <= leaves

    assert hashlib.sha256(bundle.read_bytes()).hexdigest()[:16] in text
    wb = load_workbook(tmp_path / "form.xlsx")
    ws = wb["工厂整体建设成效"]
    assert [c.value for c in ws[1]][:4] == ["序号", "指标", "建设前", "建成后"]
    assert [ws.cell(r, 2).value for r in range(2, 24)] == FORM_ROWS


def test_cli_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site_file = tmp_path / "tiny.yaml"
    site_file.write_text(factory.SITE_YAML, encoding="utf-8")
    code = main(["form", "-c", str(site_file), "--baseline", factory.BASELINE, "--current",
                 factory.CURRENT, "-o", str(tmp_path / "nope" / "form.docx")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "does not exist" in err
