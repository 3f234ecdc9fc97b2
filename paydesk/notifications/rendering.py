"""Emails from Jinja templates (`paydesk/web/templates/email/`), in the payer's language.

Each email is a pair: `<name>.html` (autoescaped, inline styles only: mail clients load no
stylesheet and should fetch nothing) and `<name>.txt` (plain text, not escaped: `&` in a
shop's name stays `&`). Both are drawn with the pages' catalogues, so one translation
serves the page and the email.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from paydesk.web.i18n import Catalogues, Language
from paydesk.web.templating import template_environment

#: The subject column's size; a longer subject is cut.
SUBJECT_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class EmailTemplates:
    """The email templates and the catalogues, built once per process."""

    def __init__(self, catalogues: Catalogues | None = None) -> None:
        self.catalogues = catalogues or Catalogues()
        # Text parts keep their last newline.
        self.environment = template_environment(keep_trailing_newline=True)

    def language(self, code: str | None) -> Language:
        """The catalogue of `code` (or of its base language), else English."""
        return self.catalogues.negotiate(code, None, None)

    def render(self, name: str, language: Language, subject: str, **values: Any) -> Rendered:
        """`subject` is already in the right language; it is made one header line."""
        plain = plain_gettext(language)
        text = self.environment.get_template(f"email/{name}.txt").render(
            **values, language=language, _=plain, gettext=plain
        )
        html = self.environment.get_template(f"email/{name}.html").render(
            **values, language=language, _=language.gettext, gettext=language.gettext
        )
        return Rendered(one_line(subject)[:SUBJECT_LENGTH], text, html)


def plain_gettext(language: Language) -> Any:
    """Translation for plain text: the variables go in as they are (no HTML escaping)."""

    def gettext(message: str, **variables: Any) -> str:
        text = language.translations.gettext(message)
        return text % variables if variables else text

    return gettext


def one_line(text: str) -> str:
    """A header value: a line break in a shop's name must not start a new header."""
    return " ".join(text.split())


@cache
def email_templates() -> EmailTemplates:
    """Shared by every caller of the process (compiling the catalogues costs a little)."""
    return EmailTemplates()
