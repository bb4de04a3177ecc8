"""Pure domain: KPI catalogue and formulas (numpy), periods, tiers, evidence. Imports config."""
