"""TPC-H as tpchgen-cli writes it: the tables every family of tests loads."""

#: The eight TPC-H tables, as tpchgen-cli names its files.
TPCH_TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
