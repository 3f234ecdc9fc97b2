"""Message catalogues and the choice of language.

Catalogues are the `.po` files under `locales/` (one folder per language, as `pybabel
init` makes them), compiled in memory at start-up: adding a language is adding a catalogue,
with no build step. The message ids are the English text, so English needs no catalogue.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from markupsafe import Markup

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
#: The cookie the language switcher sets, so the choice survives the next page.
LANGUAGE_COOKIE = "paydesk_lang"


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    #: The language's name in itself ("Français"), as a switcher shows it.
    name: str
    direction: str
    translations: NullTranslations
    locale: Locale

    def gettext(self, message: str, **variables: Any) -> Markup:
        """A translated message for a template: trusted text, with the variables
        escaped into it (as Jinja's new-style gettext does)."""
        text = Markup(self.translations.gettext(message))  # noqa: S704 - our own catalogues
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, n: int, /, **variables: Any) -> Markup:
        """`%(num)s` is the count that picks the plural form."""
        text = Markup(self.translations.ngettext(singular, plural, n))  # noqa: S704
        return text % {"num": n, **variables}


class Catalogues:
    """Every language Paydesk's pages speak."""

    def __init__(self, directory: Path = LOCALES_DIR) -> None:
        languages = {DEFAULT_LANGUAGE: _language(DEFAULT_LANGUAGE, NullTranslations())}
        for po_file in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            code = po_file.parent.parent.name
            languages[code] = _language(code, _compile(po_file, code))
        self._languages = languages

    @property
    def languages(self) -> list[Language]:
        return list(self._languages.values())

    def get(self, code: str | None) -> Language | None:
        if not code:
            return None
        return self._languages.get(_normalize(code))

    def negotiate(
        self, requested: str | None, remembered: str | None, accept_language: str | None
    ) -> Language:
        """The language of a page: asked for in the URL, else remembered from the
        switcher, else the browser's first preference Paydesk speaks, else English."""
        for tag in [requested, remembered, *preferred_tags(accept_language)]:
            found = self.get(tag) or self.get((tag or "").replace("_", "-").split("-")[0])
            if found is not None:
                return found
        return self._languages[DEFAULT_LANGUAGE]


def preferred_tags(header: str | None) -> list[str]:
    """The language tags of an Accept-Language header, most preferred first (q=0 means
    "not this one"); malformed entries are skipped, not fatal."""
    if not header:
        return []
    weighted = []
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def _normalize(code: str) -> str:
    """`pt-BR`, `pt_br` → `pt_BR`; `zh-Hans` → `zh_Hans` (Babel's spelling)."""
    parts = code.replace("-", "_").split("_")
    head = parts[0].lower()
    rest = [part.title() if len(part) == 4 else part.upper() for part in parts[1:]]
    return "_".join([head, *rest])


def _language(code: str, translations: NullTranslations) -> Language:
    try:
        locale = Locale.parse(code)
    except (ValueError, UnknownLocaleError) as exc:
        raise ValueError(f"catalogue folder {code!r} is not a language Babel knows") from exc
    name = locale.get_display_name(locale) or code
    direction = "rtl" if locale.character_order == "right-to-left" else "ltr"
    return Language(code, name[:1].upper() + name[1:], direction, translations, locale)


def _compile(po_file: Path, code: str) -> Translations:
    with po_file.open("rb") as source:
        catalog = read_po(source, locale=code, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)
