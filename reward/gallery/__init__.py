"""HTML pages to watch and compare scored videos, self-contained and opened from disk.

``write_gallery(records, "run/index.html", settings=...)`` writes the results page of a run
(best-of-N, inference-time search, ``aigc-reward score --html``): per prompt its candidates ranked
in a row of looping muted players, a sortable table, a prompt filter, the run's settings.
``write_explain_page`` shows an ``explain`` output.
"""
from .explain_page import write_explain_page
from .page import DEFAULT_PAGE_SIZE, write_gallery

__all__ = ["DEFAULT_PAGE_SIZE", "write_explain_page", "write_gallery"]
