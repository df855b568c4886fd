"""The ``policies`` command: row filters and column masks on tables (``catalog/policies.py``).

::

    nexus-flight policies add eu-only --row-filter "region = {user.region}" --on sales.public.orders
    nexus-flight policies add hide-ssn --mask ssn --on hr.public.staff --exempt-role hr
    nexus-flight policies add last4 --mask ssn --expression "'***-' || right(ssn, 4)" --on hr.public.staff
    nexus-flight policies list | show NAME | remove NAME

Each policy is checked before it is stored (AU-007) and every change is an audit event naming the
operating-system user who made it; a running gateway applies it within its identity refresh interval.
"""

from __future__ import annotations

import argparse

from nexus_flight.catalog.cli import common_options, run_action
from nexus_flight.catalog.policies import PolicySpec, add_policy, get_policy, list_policies, remove_policy
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import ConfigError
from nexus_flight.server.app.security_cli import _actor

_COLUMNS = ("name", "kind", "target", "column", "expression", "exempt_roles", "origin")


def add_policy_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``policies add|list|show|remove`` to a parser's subcommands."""
    common = common_options()
    policies = subparsers.add_parser("policies", help="row filters and column masks on tables").add_subparsers(
        dest="policies_command", required=True)
    add = policies.add_parser("add", parents=[common], help="add a row filter or a column mask to a table")
    add.set_defaults(func=_add)
    add.add_argument("name")
    add.add_argument("--on", required=True, dest="target", help="the table: catalog.schema.table")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--row-filter", help="a SQL predicate over the table's columns, e.g. region = {user.region}")
    kind.add_argument("--mask", metavar="COLUMN", help="the column to mask")
    add.add_argument("--expression", help="what replaces a masked column (default NULL)")
    add.add_argument("--exempt-role", action="append", default=[], help="a role that reads the table as it is "
                                                                       "(repeatable; admins always do)")
    listing = policies.add_parser("list", parents=[common], help="list policies")
    listing.set_defaults(func=_list)
    listing.add_argument("--catalog", help="only the policies of this catalog (source)")
    for name, func, text in (("show", _show, "show one policy"), ("remove", _remove, "delete a policy")):
        parser = policies.add_parser(name, parents=[common], help=text)
        parser.set_defaults(func=func)
        parser.add_argument("name")


def _add(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        if args.row_filter is not None and args.expression is not None:
            raise ConfigError("--expression: a row filter is its predicate; --expression goes with --mask")
        if args.row_filter is not None:
            spec = PolicySpec(args.name, "row_filter", args.target, expression=args.row_filter,
                              exempt_roles=tuple(args.exempt_role))
        else:
            spec = PolicySpec(args.name, "column_mask", args.target, column=args.mask, expression=args.expression,
                              exempt_roles=tuple(args.exempt_role))
        return add_policy(store, spec, actor=_actor()).shown()

    return run_action(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        found = [p.shown() for p in list_policies(store, args.catalog)]
        return found if args.json else [{c: p[c] for c in _COLUMNS} for p in found]

    return run_action(args, action)


def _show(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: get_policy(store, args.name).shown())


def _remove(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        removed = remove_policy(store, args.name, actor=_actor())
        return {"name": removed.name, "removed": True}

    return run_action(args, action)
