"""The project's invoices: the filtered, paged list, one invoice's page (facts, status
timeline, on-chain transfers, webhook deliveries) and its "resend the webhook" button.

The queries live in `paydesk.dashboard.invoices`, scoped to the project there; these
handlers only check who is asking, read the query string and render."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.dashboard.invoices import (
    InvoiceFilter,
    invoice_detail,
    resend_invoice_webhook,
    search_invoices,
)
from paydesk.dashboard.pages import project_url, render
from paydesk.dashboard.security import (
    DASHBOARD,
    Visitor,
    context_of,
    owned_project,
    project_request,
    signed_form,
    visitor,
)
from paydesk.invoices.status import InvoiceStatus
from paydesk.merchants.models import Merchant
from paydesk.web.forms import see_other
from paydesk.webhooks.service import MAX_RESENDS, TooManyResends

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)

#: The status filter's choices, in the vocabulary's order.
STATUS_CHOICES: tuple[str, ...] = tuple(status.value for status in InvoiceStatus)
#: A page number longer than this is junk (the data layer caps pages far below it).
_PAGE_DIGITS = 6
SEARCH_HINT = "uuid, order id, address or transaction hash"
NOTHING_TO_RESEND = (
    "There is nothing to resend: this invoice has no callback URL, or no webhook was "
    "sent for it yet."
)
TOO_MANY_RESENDS = (
    f"This invoice's webhook has been resent {MAX_RESENDS} times, the most allowed. "
    "Check your receiver, then wait for the next status change."
)


def utc_text(moment: datetime | None) -> str:
    """A stored moment as the page shows it: UTC, to the second, labelled so nobody reads
    it as local time."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fixed(amount: Decimal | None) -> str:
    """An amount exactly as stored, in fixed point (`str()` would show "1E-8")."""
    return "—" if amount is None else f"{amount:f}"


def page_number(raw: str | None) -> int:
    """`?page=` from a link anyone may edit: junk means the first page, not an error."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= _PAGE_DIGITS:
        return max(int(raw), 1)
    return 1


def filter_params(filters: InvoiceFilter) -> dict[str, str]:
    """The filter as a query string again (normalised), for links that keep it."""
    values = {
        "status": filters.status,
        "currency": filters.currency,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
        "q": filters.query,
    }
    return {key: value for key, value in values.items() if value}


def list_url(project: Merchant, filters: InvoiceFilter, page: int = 1) -> str:
    params = filter_params(filters)
    if page > 1:
        params["page"] = str(page)
    query = urlencode(params)
    return project_url(project, "/invoices" + (f"?{query}" if query else ""))


@router.get("/{merchant_id}/invoices")
async def invoices_page(request: Request, merchant_id: str) -> Response:
    context = context_of(request)
    filters = InvoiceFilter.from_query(request.query_params)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        project = await owned_project(session, current.user, merchant_id)
        found = await search_invoices(
            session, project.id, filters, page=page_number(request.query_params.get("page"))
        )
    return render(
        request, "invoices.html", current, project=project, section="invoices",
        filters=filters, found=found, statuses=STATUS_CHOICES, search_hint=SEARCH_HINT,
        list_url=lambda page: list_url(project, filters, page),
        clear_url=project_url(project, "/invoices"),
        detail_url=lambda invoice: project_url(project, f"/invoices/{invoice.uuid}"),
        utc=utc_text, fixed=fixed,
    )  # fmt: skip


def _invoice_uuid(raw: str) -> uuid.UUID:
    """The path's invoice id; anything that is not a uuid is a page that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(404, "Not found") from None


def _address_link(catalogue: Catalogue) -> Callable[[str | None, str | None], str | None]:
    """For the template: an address's explorer page on its network, when it has one."""

    def link(network_code: str | None, address: str | None) -> str | None:
        network = catalogue.network(network_code) if network_code else None
        return network.address_url(address) if network and address else None

    return link


async def _invoice(
    request: Request,
    session: AsyncSession,
    current: Visitor,
    project: Merchant,
    invoice_uuid: uuid.UUID,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    detail = await invoice_detail(session, project.id, invoice_uuid, context.catalogue)
    if detail is None:
        raise HTTPException(404, "Not found")
    return render(
        request, "invoice.html", current, project=project, section="invoices",
        detail=detail, invoice=detail.invoice, address_link=_address_link(context.catalogue),
        pay_url=f"/pay/{detail.invoice.uuid}",
        resend_url=project_url(project, f"/invoices/{detail.invoice.uuid}/resend"),
        back_url=project_url(project, "/invoices"),
        utc=utc_text, fixed=fixed, error=error, status_code=status_code,
    )  # fmt: skip


@router.get("/{merchant_id}/invoices/{invoice_uuid}")
async def invoice_page(request: Request, merchant_id: str, invoice_uuid: str) -> Response:
    async with project_request(request, merchant_id) as (_context, session, current, project):
        return await _invoice(request, session, current, project, _invoice_uuid(invoice_uuid))


@router.post("/{merchant_id}/invoices/{invoice_uuid}/resend")
async def resend_webhook(request: Request, merchant_id: str, invoice_uuid: str) -> Response:
    """Queue the invoice's latest webhook again; the page says why when it cannot."""
    async with project_request(request, merchant_id) as (_context, session, current, project):
        await signed_form(request, current)
        wanted = _invoice_uuid(invoice_uuid)
        try:
            queued = await resend_invoice_webhook(session, project.id, wanted)
        except TooManyResends:
            # Raised before anything was written: the transaction still ends cleanly.
            return await _invoice(request, session, current, project, wanted,
                                  error=TOO_MANY_RESENDS, status_code=422)  # fmt: skip
        if not queued:
            # Also someone else's invoice or none: `_invoice` answers 404 for those.
            return await _invoice(request, session, current, project, wanted,
                                  error=NOTHING_TO_RESEND, status_code=422)  # fmt: skip
    return see_other(project_url(project, f"/invoices/{wanted}?done=resent"))
