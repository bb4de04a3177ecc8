"""The KPI catalogue: every indicator of the application form's before/after table.

Labels are the form's exact wording (工厂整体建设成效 of the 2026 先进级 application form; the
2025 KPI reference list for 数字化生产设备普及率). ``mandatory`` marks the form's * items.
Each formula has a stable id and a version; KPIs with two common readings list their variants,
and the engine records which one produced each number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["up", "down"]
Provenance = Literal["measured", "declared", "imported", "mixed"]


@dataclass(frozen=True)
class Kpi:
    id: str
    label_zh: str
    label_en: str
    unit: str
    direction: Direction
    mandatory: bool
    provenance: str  # what the catalogue expects: measured / declared / measured+declared
    formula_id: str
    formula_version: int
    formula: str  # one-line definition
    variants: tuple[str, ...] = ()

    @property
    def form_label(self) -> str:
        """The label as printed on the form, with ``*`` in front of mandatory items."""
        return f"*{self.label_zh}" if self.mandatory else self.label_zh


CATALOGUE: tuple[Kpi, ...] = (
    Kpi(
        "cnc_rate",
        "关键设备数控化率",
        "Key equipment CNC rate",
        "%",
        "up",
        True,
        "measured",
        "cnc_rate.register_data",
        1,
        "key devices with control nc/cnc/plc/dcs/robot whose controller data is recorded in the "
        "period / all key devices",
    ),
    Kpi(
        "network_rate",
        "关键设备联网率",
        "Key equipment networking rate",
        "%",
        "up",
        True,
        "measured",
        "network_rate.coverage",
        1,
        "key devices whose good data covers >= network_min_coverage of their planned busy time "
        "/ all key devices",
    ),
    Kpi(
        "labour_productivity",
        "全员劳动生产率",
        "Overall labour productivity",
        "万元/人·年",
        "up",
        True,
        "declared",
        "labour_productivity",
        1,
        "工业增加值 (or 工业总产值) per year / average headcount",
        ("value_added", "output_value"),
    ),
    Kpi(
        "production_efficiency",
        "生产效率",
        "Production efficiency",
        "件/h",
        "up",
        True,
        "measured",
        "production_efficiency.good_per_apt",
        1,
        "good quantity / actual producing time (ISO 22400 throughput on good units)",
    ),
    Kpi(
        "resource_utilisation",
        "资源综合利用率",
        "Overall resource utilisation",
        "%",
        "up",
        True,
        "declared",
        "resource_utilisation",
        1,
        "material in good product / material input",
    ),
    Kpi(
        "rd_cycle",
        "产品研制周期",
        "Product development cycle",
        "天",
        "down",
        True,
        "declared",
        "rd_cycle",
        1,
        "project start to design freeze / SOP (declared, days)",
    ),
    Kpi(
        "operating_cost",
        "运营成本",
        "Operating cost",
        "万元",
        "down",
        True,
        "declared",
        "operating_cost",
        1,
        "operating cost as declared, or per 万元 of output value",
        ("absolute", "per_output_value"),
    ),
    Kpi(
        "defect_rate",
        "产品不良品率",
        "Product defect rate",
        "%",
        "down",
        True,
        "measured",
        "defect_rate",
        1,
        "(scrap + rework) / total produced, or scrap / total produced",
        ("scrap_and_rework", "scrap_only"),
    ),
    Kpi(
        "sales_per_capita",
        "人均销售额",
        "Sales per employee",
        "万元/人·年",
        "up",
        True,
        "declared",
        "sales_per_capita",
        1,
        "营业收入 per year / average headcount",
    ),
    Kpi(
        "oee",
        "设备综合利用率",
        "Overall equipment effectiveness (OEE)",
        "%",
        "up",
        True,
        "measured",
        "oee.iso22400_2.fleet_summed",
        1,
        "availability x effectiveness x quality ratio on summed times and quantities of the key "
        "equipment (ISO 22400-2)",
    ),
    Kpi(
        "inventory_turnover",
        "库存周转率",
        "Inventory turnover",
        "次/年",
        "up",
        False,
        "declared",
        "inventory_turnover",
        1,
        "营业成本 per year / average inventory",
    ),
    Kpi(
        "supplier_otd",
        "供应商准时交付率",
        "Supplier on-time delivery",
        "%",
        "up",
        False,
        "declared",
        "supplier_otd",
        1,
        "on-time purchase deliveries / deliveries due",
    ),
    Kpi(
        "order_otd",
        "订单准时达成率",
        "Order on-time delivery",
        "%",
        "up",
        True,
        "declared",
        "order_otd",
        1,
        "orders delivered on time / orders due",
    ),
    Kpi(
        "apc_rate",
        "先进过程控制投用率",
        "Advanced process control in use",
        "%",
        "up",
        False,
        "measured",
        "apc_rate",
        1,
        "time the loops are in APC / time the units run; or loops with APC in use / loops that "
        "should have it",
        ("time", "count"),
    ),
    Kpi(
        "energy_per_value",
        "单位产值综合能耗",
        "Energy per output value",
        "tce/万元",
        "down",
        True,
        "measured+declared",
        "energy_per_value.gbt2589",
        1,
        "Σ energy carriers x conversion coefficient / 工业总产值",
    ),
    Kpi(
        "co2_per_value",
        "单位产值碳排放量",
        "CO2 per output value",
        "tCO2/万元",
        "down",
        False,
        "measured+declared",
        "co2_per_value",
        1,
        "(electricity x grid factor + fuels x their factors) / 工业总产值",
    ),
    Kpi(
        "solid_waste_util",
        "一般固废综合利用率",
        "General solid waste utilisation",
        "%",
        "up",
        False,
        "declared",
        "solid_waste_util",
        1,
        "utilised / (generated + utilised from storage)",
    ),
    Kpi(
        "water_reuse",
        "水资源重复利用率",
        "Water reuse rate",
        "%",
        "up",
        False,
        "measured",
        "water_reuse",
        1,
        "reused water / (reused water + fresh water intake)",
    ),
    Kpi(
        "replication_count",
        "先进制造模式/解决方案面向供应链上下游复制推广的企业数量",
        "Enterprises the solution was replicated to",
        "家",
        "up",
        False,
        "declared",
        "replication_count",
        1,
        "count (declared)",
    ),
    Kpi(
        "ai_scenario_ratio",
        "应用人工智能技术场景比例",
        "Share of scenarios applying AI",
        "%",
        "up",
        True,
        "declared",
        "ai_scenario_ratio.register",
        1,
        "valid scenarios of the register applying AI / valid scenarios built",
    ),
    Kpi(
        "ai_model_count",
        "工厂应用人工智能模型数量",
        "AI models in use",
        "个",
        "up",
        True,
        "declared",
        "ai_model_count",
        1,
        "count (declared model register)",
    ),
    Kpi(
        "output_value",
        "工业总产值",
        "Gross industrial output value",
        "万元",
        "up",
        True,
        "declared",
        "output_value",
        1,
        "declared, or measured as good counts x unit_price_wan where prices are configured",
        ("declared", "measured"),
    ),
    Kpi(
        "digital_equipment_rate",
        "数字化生产设备普及率",
        "Digital production equipment rate",
        "%",
        "up",
        False,
        "measured",
        "digital_equipment_rate.register_data",
        1,
        "production devices with control other than none whose data is recorded / all "
        "production devices",
    ),
)

BY_ID: dict[str, Kpi] = {k.id: k for k in CATALOGUE}
