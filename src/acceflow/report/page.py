"""The dossier's page frame, rendered with Jinja2 from ``templates/dossier.html.j2`` (package data),
autoescaping on: the title and the creation time are escaped by Jinja2; each section's HTML comes
from :mod:`acceflow.report.html` (which escapes every value it is given) and is marked safe."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from acceflow.report.view import Section

__all__ = ["render_page"]

_ENV = Environment(loader=PackageLoader("acceflow.report", "templates"),
                   autoescape=select_autoescape(["html", "j2"], default=True), keep_trailing_newline=True)


def render_page(title: str, sections: Sequence[Section], created: str | None,
                nav: Sequence[tuple[str, str]]) -> str:
    """The whole dossier page: header, table of contents, then one ``<section>`` per section."""
    template = _ENV.get_template("dossier.html.j2")
    return template.render(title=title, created=created, nav=nav,
                           sections=[{"id": s.id, "html": Markup(s.html)} for s in sections])
