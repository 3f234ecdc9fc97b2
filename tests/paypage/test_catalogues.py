"""The payment page's message catalogues: every language complete and well-formed, the
template (messages.pot) in step with the templates and code, and the choice of language.
(How to extract, update and add a language: paydesk/web/locales/README.md.)"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from paydesk.web.i18n import LOCALES_DIR, Catalogues

ROOT = Path(__file__).resolve().parents[2]
POT = LOCALES_DIR / "messages.pot"
BABEL_CFG = ROOT / "babel.cfg"
#: The languages the page ships with (besides English, which needs no catalogue).
SHIPPED = ("fr", "de", "hi", "ru", "es", "pt", "tr", "zh", "ar")
CODES = sorted(path.name for path in LOCALES_DIR.iterdir() if path.is_dir())
KEYWORDS = {**DEFAULT_KEYWORDS, "_": None, "gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)")
HTML = re.compile(r"[\"<>&]")

EXTRACT = (
    "pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 --no-location"
    ' --sort-output --project=Paydesk --copyright-holder="Paydesk contributors"'
    " -o paydesk/web/locales/messages.pot ."
)
UPDATE = (
    "pybabel update -i paydesk/web/locales/messages.pot -d paydesk/web/locales --no-fuzzy-matching"
)
HOW_TO_UPDATE = (
    f"From the repository root run:\n    {EXTRACT}\n    {UPDATE}\n"
    "then translate the new messages in every paydesk/web/locales/*/LC_MESSAGES/messages.po"
    " (see paydesk/web/locales/README.md)."
)


def po_path(code: str) -> Path:
    return LOCALES_DIR / code / "LC_MESSAGES" / "messages.po"


def load(code: str) -> Catalog:
    with po_path(code).open("rb") as source:
        return read_po(source, locale=code)


def load_pot() -> Catalog:
    with POT.open("rb") as source:
        return read_po(source)


def key(message_id: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A message id as (singular,) or (singular, plural)."""
    return tuple(message_id) if isinstance(message_id, (list, tuple)) else (message_id,)


def ids(catalog: Catalog) -> set[tuple[str, ...]]:
    return {key(message.id) for message in catalog if message.id}


def forms(message) -> tuple[str, ...]:
    return key(message.string)


def shown(message_ids) -> str:
    return "\n".join(f"    {' / '.join(message_id)!r}" for message_id in sorted(message_ids))


def test_the_shipped_languages_have_catalogues():
    assert set(SHIPPED) <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_catalogue_is_complete(code):
    catalog = load(code)
    pot = load_pot()
    missing = ids(pot) - ids(catalog)
    stale = ids(catalog) - ids(pot)
    assert not missing and not stale, (
        f"{po_path(code)} is not in step with messages.pot.\n"
        f"Missing:\n{shown(missing)}\nNot in the template:\n{shown(stale)}\n"
        f"Run:\n    {UPDATE}\nand translate what it adds."
    )
    untranslated = {
        key(message.id)
        for message in catalog
        if message.id and not all(text.strip() for text in forms(message))
    }
    assert not untranslated, f"{code}: messages (or plural forms) left empty:\n" + shown(
        untranslated
    )


@pytest.mark.parametrize("code", CODES)
def test_catalogue_has_no_fuzzy_or_obsolete_entries(code):
    catalog = load(code)
    assert not catalog.fuzzy, f"{code}: the header is marked fuzzy"
    fuzzy = {key(message.id) for message in catalog if message.id and message.fuzzy}
    assert not fuzzy, (
        f"{code}: fuzzy translations are not used; check them and remove the flag:\n" + shown(fuzzy)
    )
    obsolete = {key(message.id) for message in catalog.obsolete.values()}
    assert not obsolete, f"{code}: delete the obsolete (#~) entries:\n" + shown(obsolete)


@pytest.mark.parametrize("code", CODES)
def test_catalogue_passes_babels_checks(code):
    catalog = load(code)
    errors = [
        f"    {message.id!r}: {error}" for message, found in catalog.check() for error in found
    ]
    assert not errors, f"{code}:\n" + "\n".join(errors)


@pytest.mark.parametrize("code", CODES)
def test_translations_keep_every_placeholder(code):
    """Babel's checker allows a translation to drop a named placeholder; the page does
    not: each form names exactly the ids' placeholders, and formats cleanly."""
    problems = []
    for message in load(code):
        if not message.id:
            continue
        wanted = {name for text in key(message.id) for name in PLACEHOLDER.findall(text)}
        for text in forms(message):
            if set(PLACEHOLDER.findall(text)) != wanted:
                problems.append(f"    {text!r} should use exactly {sorted(wanted)}")
            elif wanted or "python-format" in message.flags:
                try:
                    text % dict.fromkeys(wanted, "1")
                except (TypeError, ValueError, KeyError) as exc:
                    problems.append(f"    {text!r}: {exc}")
    assert not problems, f"{code}:\n" + "\n".join(problems)


@pytest.mark.parametrize("code", CODES)
def test_translations_are_plain_text(code):
    """The page inserts translations as trusted markup (in text and in attributes)."""
    unsafe = [
        text for message in load(code) if message.id for text in forms(message) if HTML.search(text)
    ]
    assert not unsafe, f'{code}: do not use " < > & in translations: {unsafe}'


@pytest.mark.parametrize("code", CODES)
def test_catalogue_has_the_plural_forms_of_its_language(code):
    catalog = load(code)
    expected = get_plural(Locale.parse(code))
    assert catalog.num_plurals == expected.num_plurals, (
        f"{code}: Plural-Forms says {catalog.num_plurals} forms, Babel {expected.num_plurals}"
    )
    assert catalog.plural_expr == expected.plural_expr
    # The header's rule gives each of the language's (CLDR) categories of whole numbers
    # its own form, and uses every form.
    rule = Locale.parse(code).plural_form
    choose = gettext.c2py(catalog.plural_expr)
    by_category: dict[str, set[int]] = {}
    for n in [*range(1000), 1_000_000, 1_000_001, 2_000_000, 10_000_000]:
        by_category.setdefault(rule(n), set()).add(choose(n))
    assert all(len(chosen) == 1 for chosen in by_category.values()), by_category
    assert sorted(index for (index,) in by_category.values()) == list(range(catalog.num_plurals)), (
        by_category
    )
    wrong = {
        key(message.id)
        for message in catalog
        if message.id and message.pluralizable and len(forms(message)) != catalog.num_plurals
    }
    assert not wrong, f"{code}: plural messages need {catalog.num_plurals} forms:\n" + shown(wrong)


def test_the_template_is_up_to_date_with_the_templates_and_code():
    with BABEL_CFG.open() as config:
        method_map, options_map = parse_mapping_cfg(config, str(BABEL_CFG))
    extracted = {
        key(message)
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS
        )
    }
    in_pot = ids(load_pot())
    added, removed = extracted - in_pot, in_pot - extracted
    assert not added and not removed, (
        "paydesk/web/locales/messages.pot is out of date.\n"
        f"New in the templates or code:\n{shown(added)}\n"
        f"No longer used:\n{shown(removed)}\n{HOW_TO_UPDATE}"
    )


def test_the_server_loads_every_language():
    catalogues = Catalogues()
    languages = {language.code: language for language in catalogues.languages}
    assert set(languages) == {"en", *CODES}
    assert {"en", *SHIPPED} <= set(languages)
    for code, language in languages.items():
        assert language.direction == ("rtl" if code == "ar" else "ltr"), code
        if code != "en":
            # Compiled from its catalogue, plural rule included.
            assert language.gettext("Copy") != "Copy", code
            assert language.gettext("Copy") == load(code).get("Copy").string
    russian = languages["ru"]
    networks = [russian.ngettext("%(num)s network", "%(num)s networks", n) for n in (1, 3, 5)]
    assert len(set(networks)) == 3, networks


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        ("pt-BR", "pt"),
        ("pt-BR,pt;q=0.9,en-US;q=0.8", "pt"),
        ("zh-CN", "zh"),
        ("zh-Hans-CN,zh;q=0.9", "zh"),
        ("xx, de;q=0.5", "de"),
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("DE-de", "de"),
        ("ar-EG,ar;q=0.9", "ar"),
        ("hi-IN", "hi"),
        ("tr", "tr"),
        ("es-419", "es"),
        ("es;q=0.2, ru;q=0.7", "ru"),
        ("fr;q=0, de;q=0.5", "de"),
        ("fr;q=0", "en"),
        ("*", "en"),
        ("", "en"),
        (None, "en"),
        (";;;, ,q=1, fr;q=abc", "en"),
        ("\x00\xff garbage", "en"),
        ("x" * 100, "en"),
    ],
)
def test_language_from_accept_language(header, code):
    assert Catalogues().negotiate(None, None, header).code == code


def test_requested_language_wins_then_the_cookie_then_the_header():
    catalogues = Catalogues()
    assert catalogues.negotiate("ru", "de", "fr").code == "ru"
    assert catalogues.negotiate(None, "de", "fr").code == "de"
    assert catalogues.negotiate("en", "de", "fr").code == "en"
    # An unknown code asked for (or remembered) is ignored, not an error.
    assert catalogues.negotiate("xx", None, "es").code == "es"
    assert catalogues.negotiate("xx", "tr", "es").code == "tr"
    assert catalogues.negotiate("xx", "yy", None).code == "en"
    assert catalogues.negotiate("", "", "").code == "en"
    # A regional code in a link falls back to its language, as the header does.
    assert catalogues.negotiate("pt-BR", None, "de").code == "pt"
    assert catalogues.negotiate("zh_CN", None, None).code == "zh"
