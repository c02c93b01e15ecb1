"""Rendering the HTML reports that share one look (inspection, capture summary, switchover drill).

Templates live in `harness/report/templates/` and extend `base.html`, which holds the one stylesheet: every
report is a single self-contained file (styles inline, charts inline SVG, no script), fit to print.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
