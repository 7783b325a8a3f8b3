"""Reports: the report.json schema and its renderings (markdown, terminal table)."""
