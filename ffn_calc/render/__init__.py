"""Renderers (see base.py): one function per format, handlers loaded per result type; the
table layouts (layout.py) load only when a table is drawn."""

from ffn_calc.render.base import chunks, csv_rows, tables, to_csv, to_json

__all__ = ["chunks", "csv_rows", "tables", "to_csv", "to_json"]
