"""The Flight SQL wire: decode requests, call the query pipeline, encode answers, map errors."""
