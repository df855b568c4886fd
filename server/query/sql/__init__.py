"""SQL analysis: routing to a source and the read-only validator (sqlglot plus the engines' own readings)."""
