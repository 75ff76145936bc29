"""The control API on the admin listener: one route table, one error funnel to JSON."""
