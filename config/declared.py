"""Declared business figures and registers (the KPIs the gateway cannot measure)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from config.base import Frozen, Identifier

DeclaredId = Literal[
    "output_value",  # 工业总产值, 万元
    "value_added",  # 工业增加值, 万元
    "headcount",  # 平均从业人数, 人
    "sales",  # 营业收入, 万元
    "cost_of_sales",  # 营业成本, 万元
    "inventory_avg",  # 平均库存, 万元
    "supplier_deliveries_due",
    "supplier_deliveries_on_time",
    "orders_due",
    "orders_on_time",
    "rd_cycle_days",  # 产品研制周期, 天
    "operating_cost",  # 运营成本, 万元
    "material_input",  # 资源综合利用率 inputs
    "material_in_product",
    "solid_waste_generated",
    "solid_waste_utilised",
    "solid_waste_utilised_from_storage",
    "replication_count",  # 复制推广企业数量, 家
    "ai_model_count",  # 工厂应用人工智能模型数量, 个
]


class Period(Frozen):
    start: dt.date
    end: dt.date = Field(description="inclusive last day")

    @model_validator(mode="after")
    def _order(self) -> Period:
        if self.end < self.start:
            raise ValueError("period end is before its start")
        return self


class DeclaredFigure(Frozen):
    id: DeclaredId
    value: float
    unit: str
    period: Period
    source: str = Field(min_length=1, description="source document, e.g. 2024年财务报表 p.12")


Section = Literal["工厂建设", "研发设计", "生产作业", "生产管理", "运营管理"]


class ScenarioClaim(Frozen):
    """One claimed scenario, written 环节名称-场景名称-场景实例名称 as on the form."""

    entry: str = Field(description="环节名称-场景名称-场景实例名称")
    uses_ai: bool = False
    built: dt.date | None = None
    evidence: tuple[str, ...] = Field(
        default=(), description="device ids or device/point references that evidence it"
    )

    @model_validator(mode="after")
    def _shape(self) -> ScenarioClaim:
        if len([p for p in self.entry.split("-") if p.strip()]) < 3:
            raise ValueError("write the entry as 环节名称-场景名称-场景实例名称")
        return self


class Maturity(Frozen):
    level: Literal[1, 2, 3, 4, 5] = Field(description="GB/T 39116-2020: 1 规划级 .. 5 引领级")
    score: float | None = None
    report: str = Field(min_length=1, description="assessment report reference")
    assessed: dt.date | None = None


class Declared(Frozen):
    figures: tuple[DeclaredFigure, ...] = ()
    maturity: Maturity | None = None
    scenarios: tuple[ScenarioClaim, ...] = ()
    target_tier: Literal["基础级", "先进级", "卓越级", "领航级"] | None = None
    import_files: tuple[str, ...] = Field(
        default=(), description="CSV/XLSX files of declared figures, relative to the site file"
    )


__all__ = ["Declared", "DeclaredFigure", "Identifier", "Maturity", "Period", "ScenarioClaim"]
