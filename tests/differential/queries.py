"""The queries every family answers: TPC-H 1-22 and the everyday shapes BI tools send, over the TPC-H tables.

Written once in DuckDB's dialect over unqualified table names; ``Family.for_gateway`` / ``for_engine`` qualify the
tables and render each query in the family's own dialect with sqlglot.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.validator.tpch import TPCH_QUERIES

TPCH = {f"tpch_q{n:02d}": sql for n, sql in TPCH_QUERIES.items()}

#: Text predicates, LIKE, IN, text joins, grouping and ordering by text, date and decimal arithmetic, CASE, windows.
EVERYDAY = {
    "text_equals": "select count(*) as n from nation where n_name = 'CHINA'",
    "text_not_equals_order": "select n_name from nation where n_name <> 'CHINA' order by n_name",
    "text_like": "select p_partkey, p_type from part where p_type like '%BRASS' order by p_partkey limit 50",
    "text_not_like": "select count(*) as n from orders where o_comment not like '%special%requests%'",
    "text_in_list": "select c_custkey, c_mktsegment from customer where c_mktsegment in ('BUILDING', 'MACHINERY') "
    "order by c_custkey limit 100",
    "text_join": "select n.n_name, r.r_name from nation n join region r on n.n_regionkey = r.r_regionkey "
    "and r.r_name = 'ASIA' order by n.n_name",
    "group_by_text": "select o_orderpriority, count(*) as n, sum(o_totalprice) as total from orders "
    "group by o_orderpriority order by o_orderpriority",
    "order_by_text_desc": "select s_name, s_acctbal from supplier order by s_name desc limit 20",
    "text_range": "select count(*) as n from customer where c_name between 'Customer#000000100' and "
    "'Customer#000000200'",
    "date_arithmetic": "select o_orderkey, o_orderdate, o_orderdate + interval '30' day as due from orders "
    "where o_orderdate < date '1992-01-10' order by o_orderkey",
    "date_difference": "select l_orderkey, l_linenumber, l_receiptdate - l_shipdate as days from lineitem "
    "where l_orderkey < 40 order by l_orderkey, l_linenumber",
    "decimal_arithmetic": "select o_orderkey, o_totalprice * 2 as doubled, o_totalprice - 0.01 as less, "
    "o_totalprice / 4 as quarter from orders where o_orderkey < 100 order by o_orderkey",
    "decimal_aggregates": "select l_returnflag, sum(l_extendedprice * (1 - l_discount)) as revenue, "
    "avg(l_quantity) as avg_qty, min(l_discount) as min_disc, max(l_tax) as max_tax from lineitem "
    "group by l_returnflag order by l_returnflag",
    "case_when": "select o_orderkey, case when o_totalprice > 100000 then 'big' when o_totalprice > 10000 then "
    "'medium' else 'small' end as size from orders where o_orderkey < 200 order by o_orderkey",
    "window_rank": "select n_name, n_regionkey, rank() over (partition by n_regionkey order by n_name) as r "
    "from nation order by n_regionkey, r",
    "window_running_sum": "select o_orderkey, sum(o_totalprice) over (order by o_orderkey) as running from orders "
    "where o_orderkey < 100 order by o_orderkey",
    "count_distinct": "select count(distinct c_nationkey) as nations, count(*) as customers from customer",
    "nulls_from_outer_join": "select c_custkey, o_orderkey from customer left join orders on c_custkey = o_custkey "
    "and o_orderkey < 10 where c_custkey < 20 order by c_custkey, o_orderkey",
    "empty_result": "select n_name from nation where n_name = 'ATLANTIS'",
    "unnamed_aggregates": "select count(*), sum(n_nationkey) from nation",
    # 75k rows of NULLs and integers before the first text and decimal: values that arrive after the first batch.
    "null_first_batches": "select o_orderkey, case when n_nationkey = 5 then o_comment end as late_text, "
    "case when n_nationkey < 5 then o_shippriority else o_totalprice end as late_number from nation, orders "
    "where n_nationkey < 6 order by n_nationkey, o_orderkey",
}

#: ``?`` parameters of each Python type a client binds, compared with the engine binding the same value itself.
PARAMETERS = {
    "param_int": ("select n_name from nation where n_nationkey = ?", (3,)),
    "param_int_list": ("select n_name from nation where n_nationkey in (?, ?) order by n_name", (1, 2)),
    "param_text": ("select n_nationkey from nation where n_name = ?", ("CANADA",)),
    "param_text_non_ascii": ("select count(*) as n from nation where n_name = ?", ("CÔTE D’IVOIRE 中",)),
    "param_decimal": ("select count(*) as n from orders where o_totalprice > ?", (Decimal("250000.50"),)),
    "param_float": ("select count(*) as n from lineitem where l_discount < ?", (0.03,)),
    "param_date": ("select count(*) as n from orders where o_orderdate >= ?", (dt.date(1995, 1, 1),)),
    "param_date_as_text": ("select count(*) as n from orders where o_orderdate >= ?", ("1995-01-01",)),
    "param_date_text_cast": ("select count(*) as n from orders where o_orderdate >= cast(? as date)", ("1995-01-01",)),
    "param_like": ("select count(*) as n from part where p_type like ?", ("%BRASS",)),
    "param_null": ("select count(*) as n from nation where n_comment = ?", (None,)),
    "param_count_and_sum": (
        "select count(*) as n, sum(l_extendedprice) as total from lineitem where l_orderkey > ?",
        (59000,),
    ),
}
