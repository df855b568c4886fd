"""Authentication, access and limits over the catalog's users, roles, keys, grants and policies.

The Flight layer knows only the protocols it needs (``server/flight/auth.py``'s ``Authenticator``); the pipeline
knows only the principal (``server/query/principal.py``). This package implements them on the catalog, and
``server/app`` wires it in.
"""
