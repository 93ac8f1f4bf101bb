"""The book: running the chapters, showing their results, and keeping the claims ledger. Imports the core and
the lenses, never a chapter.

- :mod:`~rilib.book.runner`: execute chapters with papermill, build the HTML with Jupyter Book 1.x;
- :mod:`~rilib.book.display`: glue helpers, tables with intervals, the claims section of every page;
- :mod:`~rilib.book.plotting`: one figure style and the plots the chapters share;
- :mod:`~rilib.book.ledger`: the claims ledger, and the ledger as JSON data;
- :mod:`~rilib.book.papers`: the papers the claims test;
- :mod:`~rilib.book.dashboard`: the panels of the synthesis page's ε dashboard, one per lens.
"""

from .display import (claims_section, glue_by_model, glue_figures, glue_intervals, glue_key, glue_table, glue_values, mean_pm)
from .ledger import CLAIMS, Measurement, claim, format_ledger, list_claims, run as run_claims, to_frame, write_json
from .runner import build, run, select, sources

__all__ = ["claims_section", "glue_by_model", "glue_figures", "glue_intervals", "glue_key", "glue_table", "glue_values", "mean_pm",
           "CLAIMS", "Measurement", "claim", "format_ledger", "list_claims", "run_claims", "to_frame", "write_json",
           "build", "run", "select", "sources"]
