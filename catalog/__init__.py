"""The catalog: data sources, the credential vault, query history and the schema cache."""
