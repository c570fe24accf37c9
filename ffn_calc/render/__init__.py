"""Renderers (see base.py): one function per format, handlers loaded per result type."""

from ffn_calc.render.base import bar_chart, chunks, csv_rows, tables, to_csv, to_json

__all__ = ["bar_chart", "chunks", "csv_rows", "tables", "to_csv", "to_json"]
