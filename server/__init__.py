"""The Flight SQL endpoint: protocol, authentication, sessions, query service and CLI."""

__version__ = "0.1.0"
