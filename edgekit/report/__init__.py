"""Reports: the report.json schema and its markdown rendering (the terminal table: edgekit.terminal)."""
