"""The before/after table on the demo factory: order, labels, change, exports, determinism."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from config.loader import load_site
from config.models import SiteConfig
from config.mtconnect import state_code
from metrics.catalogue import CATALOGUE
from metrics.engine import KpiTable, compute_period, compute_table
from metrics.periods import parse_range
from metrics.recording import AFTER_NS
from metrics.table import HEADERS_ZH, fmt_change, to_csv, to_text, to_xlsx
from tests.metrics.memreader import MemReader

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
MIN = 60_000_000_000

# the form's rows in order (工厂整体建设成效), then the 2025 list's 数字化生产设备普及率
FORM_LABELS = [
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
    "数字化生产设备普及率",
]


def _fill(rd: MemReader, start: int, end: int, seed: int, p_prod: float) -> None:
    rng = np.random.default_rng(seed)
    ts = np.arange(start, end, MIN, dtype=np.int64)
    for i, dev in enumerate(("cnc1", "cnc2", "cnc3", "cnc4")):
        st = np.where(rng.random(ts.size) < p_prod, 0, rng.choice([1, 2, 3], ts.size))
        rd.add(dev, "state", ts, st)
        rd.add(dev, "good", ts, np.cumsum(st == 0) * (1 + i % 2))
        rd.add(dev, "scrap", ts, np.cumsum(rng.random(ts.size) < 0.02))
    # cnc5 speaks MTConnect: its state is the Execution/ControllerMode code of the same states
    st = np.where(rng.random(ts.size) < p_prod, 0, rng.choice([1, 2, 3], ts.size))
    words = [("ACTIVE", "AUTOMATIC"), ("ACTIVE", "MANUAL"), ("READY", None), ("STOPPED", None)]
    codes = np.array([state_code(e, m) for e, m in words])  # producing, setup, idle, down
    good, scrap = np.cumsum(st == 0), np.cumsum(rng.random(ts.size) < 0.02)
    rd.add("cnc5", "state", ts, codes[st])
    rd.add("cnc5", "good", ts, good)
    rd.add("cnc5", "scrap", ts, scrap)
    rd.add("cnc5", "parts", ts, good + scrap)
    rd.add("furnace1", "apc", ts, (np.arange(ts.size) % 4 > 0).astype(float))
    rd.add("meter1", "energy", ts, np.arange(ts.size) * 2.0)
    rd.add("meter2", "energy", ts, np.arange(ts.size) * 5.0)
    rd.add("water1", "fresh", ts, np.arange(ts.size) * 0.2)
    rd.add("water1", "reused", ts, np.arange(ts.size) * 0.6)
    rd.add("qs1", "inspected", ts, np.arange(ts.size) * 4.0)
    rd.add("qs1", "passed", ts, np.arange(ts.size) * 3.0)
    rd.add("qs1", "rejected", ts, np.arange(ts.size) * 0.5)
    rd.add("qs1", "reworked", ts, np.arange(ts.size) * 0.5)


@pytest.fixture(scope="module")
def demo() -> tuple[SiteConfig, MemReader, object, object]:
    site = load_site(DEMO)
    tz = site.site.timezone
    b = parse_range("2025-12-01..2025-12-07", tz)
    c = parse_range("2026-01-05..2026-01-11", tz)
    rb, rc = MemReader(), MemReader()
    _fill(rb, b.start_ns, b.end_ns, 1, 0.55)
    _fill(rc, c.start_ns, c.end_ns, 2, 0.75)
    rd = MemReader()
    for key in rb._data:  # concatenate the two periods point by point
        sb, sc = rb._data[key], rc._data[key]
        rd.add(
            key[0], key[1], np.concatenate([sb.ts, sc.ts]), np.concatenate([sb.values, sc.values])
        )
    return site, rd, b, c


def test_rows_in_form_order_with_exact_labels(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, b, c = demo
    t = compute_table(rd, site, b, c)
    assert [r.form_label for r in t.rows] == FORM_LABELS
    assert [r.id for r in t.rows] == [k.id for k in CATALOGUE]
    assert all(r.label_en for r in t.rows)


def test_values_provenance_and_change(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, b, c = demo
    t = compute_table(rd, site, b, c)
    oee = t.row("oee")
    assert oee.before.value is not None
    assert oee.after.value is not None
    assert oee.after.value > oee.before.value
    assert oee.change_label == "提升"
    assert oee.change == pytest.approx((oee.after.value - oee.before.value) / oee.before.value)
    assert oee.before.provenance == "measured"
    assert oee.variant == "fleet_summed, offline excluded"
    assert any("mean of machines' OEE" in n for n in oee.after.notes)
    rd_cycle = t.row("rd_cycle")
    assert rd_cycle.before.value == 160
    assert rd_cycle.after.value == 121
    assert rd_cycle.change_label == "下降"
    assert fmt_change(rd_cycle) == "下降 24.4%"
    assert rd_cycle.before.inputs[0].provenance == "declared"
    assert "PLM项目台账" in rd_cycle.before.inputs[0].source
    # quality station only (kpi.quality_devices of demo.yaml): (0.5 + 0.5) / 4
    defect = t.row("defect_rate")
    assert defect.after.value == pytest.approx(25.0, rel=1e-3)
    assert defect.variant == "scrap_and_rework"
    assert any("scrap only" in n and "12.5" in n for n in defect.after.notes)
    water = t.row("water_reuse")
    assert water.after.value == pytest.approx(75.0, rel=1e-3)
    energy = t.row("energy_per_value")
    assert energy.after.provenance == "mixed"
    assert {i.provenance for i in energy.after.inputs} == {"measured", "declared"}
    assert any("elec_kgce_gbt2589_2020" in n for n in energy.after.notes)
    ov = t.row("output_value")
    assert ov.variant == "declared"
    assert ov.after.provenance == "declared"
    assert t.settings["factors"]["grid_co2_kg_per_kwh"]["year"] == 2023
    lp = t.row("labour_productivity")
    assert lp.variant == "value_added"
    # 6300 万元 a year over 196 people
    assert lp.after.value == pytest.approx(6300 / 196)
    apc = t.row("apc_rate")
    assert apc.variant == "time"
    assert apc.after.value == pytest.approx(75.0, rel=1e-3)
    assert t.row("ai_model_count").change is None  # baseline 0: no relative change
    assert t.row("network_rate").after.value == 100.0
    assert t.row("cnc_rate").after.value == 100.0


def test_imported_baseline_is_marked(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, b, c = demo
    t = compute_table(rd, site, b, c, baseline_imported=True)
    assert t.row("oee").before.provenance == "imported"
    assert t.row("oee").after.provenance == "measured"
    assert t.row("rd_cycle").before.provenance == "declared"


def test_deterministic_and_round_trip(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, b, c = demo
    d1 = compute_table(rd, site, b, c).to_dict()
    d2 = compute_table(rd, site, b, c).to_dict()
    text = json.dumps(d1, ensure_ascii=False, sort_keys=True, allow_nan=False)
    assert text == json.dumps(d2, ensure_ascii=False, sort_keys=True, allow_nan=False)
    back = KpiTable.from_dict(json.loads(text))
    assert back.to_dict() == json.loads(text)


def test_reads_only_the_period_and_needed_points(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, _b, c = demo
    rd.calls.clear()
    res = compute_period(rd, site, c)
    # the period, its end reading and the samples just after it; the heartbeat after the end
    after = c.end_ns + AFTER_NS
    assert {(x[2], x[3]) for x in rd.calls if x[0] != "_gateway"} == {(c.start_ns, after)}
    assert [x[2:] for x in rd.calls if x[0] == "_gateway"] == [(c.end_ns, after, True)]
    read = {(x[0], x[1]) for x in rd.calls}
    assert ("cnc1", "state") in read
    assert ("cnc1", "spindle_kw") not in read
    assert all(x[4] for x in rd.calls)  # step signals and counters need the prior value
    assert len(res.reads) == len(rd.calls)


def test_devices_filter(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, _b, c = demo
    res = compute_period(rd, site, c, devices=["cnc1", "cnc2"])
    assert res.devices == ("cnc1", "cnc2")
    assert len(res.machines) == 2
    with pytest.raises(KeyError, match="nope"):
        compute_period(rd, site, c, devices=["nope"])


def test_csv_and_xlsx_exports(demo: tuple) -> None:  # type: ignore[type-arg]
    site, rd, b, c = demo
    t = compute_table(rd, site, b, c)
    text = to_csv(t)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert tuple(rows[0][:4]) == ("指标", "建设前", "建成后", "变化")
    assert tuple(rows[0]) == HEADERS_ZH
    assert [r[0] for r in rows[1:]] == FORM_LABELS
    rd_row = rows[1 + FORM_LABELS.index("*产品研制周期")]
    assert rd_row[1:4] == ["160.0", "121.0", "下降 24.4%"]
    wb = load_workbook(io.BytesIO(to_xlsx(t)))
    ws = wb["工厂整体建设成效"]
    cells = list(ws.iter_rows(values_only=True))
    assert cells[0][:4] == ("指标", "建设前", "建成后", "变化")
    assert [r[0] for r in cells[1:]] == FORM_LABELS
    xl_rd = cells[1 + FORM_LABELS.index("*产品研制周期")]
    assert xl_rd[1:4] == (160, 121, "下降 24.4%")
    assert wb["期间"]["B2"].value == b.label
    en = list(csv.reader(io.StringIO(to_csv(t, "en").lstrip("\ufeff"))))
    assert en[0][0] == "KPI"
    assert en[1][0] == "*Key equipment CNC rate"
    assert "关键设备数控化率" in to_text(t)
    assert "Key equipment CNC rate" in to_text(t, "en")


def test_change_formatting() -> None:
    from metrics.engine import KpiRow, KpiValue

    def row(direction: str, change: float | None) -> KpiRow:
        v = KpiValue(1.0, "measured")
        label = "提升" if direction == "up" else "下降"
        return KpiRow(
            "x", "x", "x", "%", direction, False, "measured", "f", 1, None, v, v, change, label
        )

    assert fmt_change(row("up", 0.223)) == "提升 22.3%"
    assert fmt_change(row("down", -0.502)) == "下降 50.2%"
    assert fmt_change(row("down", 0.1)) == "下降 -10.0%"  # a worsening shows negative
    assert fmt_change(row("down", 0.0)) == "下降 0.0%"
    assert fmt_change(row("up", None)) == "—"
    assert fmt_change(row("up", 0.05), "en") == "improved 5.0%"
    assert fmt_change(row("down", 0.1), "en") == "worsened 10.0%"
