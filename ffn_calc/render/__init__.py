"""Renderers (see base.py): one function per format, handlers loaded per result type."""

from ffn_calc.render.base import as_dict, bar_chart, csv_rows, tables, to_csv, to_json

__all__ = ["as_dict", "bar_chart", "csv_rows", "tables", "to_csv", "to_json"]
