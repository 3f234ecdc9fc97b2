"""Projects ("merchants"): creating one in the seeds' steps, its overview, API access and
keys, the Moneroo-dialect keys and webhook endpoints, and its settings."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.accounts import service as accounts
from paydesk.checkout import webhook_endpoints
from paydesk.dashboard.pages import project_url, render
from paydesk.dashboard.security import (
    DASHBOARD,
    Visitor,
    client_of,
    context_of,
    project_request,
    signed_form,
    visitor,
)
from paydesk.merchants import service as merchants
from paydesk.merchants.models import Merchant
from paydesk.merchants.moneroo_keys import ensure_keys
from paydesk.merchants.service import ApiAccess, Integration, KeyKind
from paydesk.vault import Vault
from paydesk.web.forms import see_other

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)

INTEGRATIONS = (
    (Integration.LINK, "Payment links", "Make invoices in the dashboard and share their "
     "link or QR code: no website needed."),
    (Integration.API, "API", "Your website or app creates invoices through the API "
     "(Cryptomus or Moneroo dialect) and hears back by webhook."),
    (Integration.PLUGIN, "Shop plugin", "A WooCommerce, OpenCart or PrestaShop plugin for "
     "Cryptomus or Moneroo works by changing its base URL to this server."),
)  # fmt: skip


@router.get("")
async def projects_page(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        projects = list(
            await session.scalars(
                select(Merchant)
                .where(Merchant.user_id == current.user.id)
                .order_by(Merchant.created_at)
            )
        )
    if not projects:
        return see_other(f"{DASHBOARD}/projects/new")
    return render(request, "projects.html", current, projects=projects)


@router.get("/new")
async def new_project_page(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
    return render(request, "project_new.html", current, name="")


@router.post("/new")
async def new_project(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        form = await signed_form(request, current)
        name = form.get_one("name")
        try:
            issued = await merchants.create_merchant(
                session, context.vault, name=name, user=current.user, api_access=ApiAccess.NONE
            )
        except merchants.MerchantError:
            return render(request, "project_new.html", current, name=name, status_code=422,
                          error="A project name is 1 to 100 characters.")  # fmt: skip
    return see_other(f"{DASHBOARD}/projects/{issued.merchant_id}/integration?done=project-created")


@router.get("/{merchant_id}/integration")
async def integration_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_, _, current, project):
        return render(request, "project_integration.html", current, project=project,
                      integrations=INTEGRATIONS)  # fmt: skip


@router.post("/{merchant_id}/integration")
async def choose_integration(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, _session, current, project):
        form = await signed_form(request, current)
        chosen = form.get_one("integration")
        if chosen in {item.value for item in Integration}:
            project.integration = chosen
    target = {"api": "/api", "plugin": "/api", "link": "/links"}.get(chosen, "")
    return see_other(project_url(project, target))


@router.get("/{merchant_id}")
async def overview(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        wallets = await context.balances.wallets(session, project.id)
    return render(request, "project.html", current, project=project, section="overview",
                  wallets=wallets)  # fmt: skip


# ------------------------------------------------------------------ API access and keys
@router.get("/{merchant_id}/api")
async def api_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, _session, current, project):
        return _api(request, current, project, context.vault)


def _api(
    request: Request,
    current: Visitor,
    project: Merchant,
    vault: Vault,
    *,
    payout_key: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    approved = project.api_access == ApiAccess.APPROVED
    return render(
        request, "project_api.html", current, project=project, section="api",
        approved=approved, access=project.api_access,
        payment_key=vault.decrypt(project.payment_key_encrypted) if approved else None,
        payout_key=payout_key, error=error, status_code=status_code,
        payouts_held_until=project.payouts_held_until,
    )  # fmt: skip


@router.post("/{merchant_id}/api/request")
async def request_access(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = await signed_form(request, current)
        try:
            await merchants.request_api_access(
                session, project, website=form.get_one("website"),
                description=form.get_one("description"),
                approve=context.settings.approves_api_access,
            )  # fmt: skip
        except merchants.MerchantError as refused:
            return _api(request, current, project, context.vault, error=str(refused),
                        status_code=422)  # fmt: skip
    context.credentials.invalidate(project.id)
    return see_other(project_url(project, "/api?done=access-requested"))


@router.post("/{merchant_id}/api/payment-key")
async def rotate_payment_key(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        await signed_form(request, current)
        await merchants.rotate_key(session, context.vault, project.id, KeyKind.PAYMENT)
    context.credentials.invalidate(project.id)
    return see_other(project_url(project, "/api?done=key-rotated"))


@router.post("/{merchant_id}/api/payout-key")
async def payout_key(request: Request, merchant_id: str) -> Response:
    """Show (action=reveal) or replace (action=rotate) the payout key; both need the
    password again, and a replaced key holds payouts for the configured hours."""
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = await signed_form(request, current)
        try:
            await accounts.recheck_password(
                session,
                current.session,
                current.user,
                form.get_one("password"),
                client=client_of(request),
            )
        except accounts.AccountError as refused:
            status = 429 if isinstance(refused, accounts.Throttled) else 401
            return _api(request, current, project, context.vault, error=str(refused),
                        status_code=status)  # fmt: skip
        if project.api_access != ApiAccess.APPROVED:
            return _api(request, current, project, context.vault, status_code=403,
                        error="The payout key is shown once API access is granted.")  # fmt: skip
        if form.get_one("action") == "rotate":
            key = await merchants.rotate_key(
                session, context.vault, project.id, KeyKind.PAYOUT,
                payout_hold=timedelta(hours=context.settings.payout_key_hold_hours),
            )  # fmt: skip
            await session.refresh(project)
        else:
            key = context.vault.decrypt(project.payout_key_encrypted)
        response = _api(request, current, project, context.vault, payout_key=key)
    context.credentials.invalidate(project.id)
    return response


# ------------------------------------------------------------------ Moneroo dialect
@router.get("/{merchant_id}/moneroo")
async def moneroo_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, session, current, project):
        return await _moneroo(request, session, current, project)


async def _moneroo(request: Request, session: AsyncSession, current: Visitor, project: Merchant,
                   *, error: str | None = None, status_code: int = 200) -> Response:  # fmt: skip
    context = context_of(request)
    keys = await ensure_keys(session, context.vault, project)
    endpoints = await webhook_endpoints.list_endpoints(session, context.vault, project.id)
    return render(
        request, "project_moneroo.html", current, project=project, section="moneroo",
        keys=keys, live_enabled=project.api_access == ApiAccess.APPROVED,
        endpoints=endpoints, environments=webhook_endpoints.ENVIRONMENTS,
        error=error, status_code=status_code,
    )  # fmt: skip


@router.post("/{merchant_id}/moneroo/endpoints")
async def moneroo_endpoint_add(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = await signed_form(request, current)
        try:
            await webhook_endpoints.add(
                session, context.vault, project.id, form.get_one("url"),
                environment=form.get_one("environment"),
                secret=form.get_one("secret") or None,
            )  # fmt: skip
        except webhook_endpoints.EndpointError as refused:
            return await _moneroo(request, session, current, project, error=str(refused),
                                  status_code=422)  # fmt: skip
    return see_other(project_url(project, "/moneroo?done=endpoint-added"))


@router.post("/{merchant_id}/moneroo/endpoints/{endpoint_id}")
async def moneroo_endpoint_change(request: Request, merchant_id: str, endpoint_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = await signed_form(request, current)
        try:
            endpoint = uuid.UUID(endpoint_id)
            action = form.get_one("action")
            if action == "delete":
                await webhook_endpoints.delete(session, endpoint, merchant_id=project.id)
            else:
                await webhook_endpoints.set_enabled(
                    session, context.vault, endpoint, action == "enable", merchant_id=project.id
                )
        except (ValueError, webhook_endpoints.UnknownEndpoint):
            return await _moneroo(request, session, current, project, status_code=404,
                                  error="No such webhook endpoint.")  # fmt: skip
    return see_other(project_url(project, "/moneroo?done=endpoint-changed"))


# ------------------------------------------------------------------ settings
@router.get("/{merchant_id}/settings")
async def settings_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, _session, current, project):
        return _settings(request, current, project)


def _settings(request: Request, current: Visitor, project: Merchant, *, error: str | None = None,
              status_code: int = 200) -> Response:  # fmt: skip
    context = context_of(request)
    services = [s for s in context.catalogue.services if context.addresses.serves(s.network)]
    enabled = project.enabled_services
    chosen = {
        (s.currency, s.network)
        for s in services
        if enabled is None
        or any(
            e["currency"] == s.currency and e.get("network") in (None, s.network) for e in enabled
        )
    }
    return render(
        request, "project_settings.html", current, project=project, section="settings",
        services=services, chosen=chosen, error=error, status_code=status_code,
    )  # fmt: skip


@router.post("/{merchant_id}/settings")
async def save_settings(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (context, session, current, project):
        form = await signed_form(request, current)
        offered = {
            f"{s.currency}/{s.network}": s
            for s in context.catalogue.services
            if context.addresses.serves(s.network)
        }
        picked = [offered[key] for key in form.get("service", []) if key in offered]
        try:
            await merchants.save_preferences(
                session, project,
                default_callback_url=form.get_one("default_callback_url").strip() or None,
                enabled=None if len(picked) == len(offered) else
                [{"currency": s.currency, "network": s.network} for s in picked],
                commission_payer=form.get_one("commission_payer"),
                notification_emails=form.get_one("notification_emails"),
                customer_receipts=form.get_one("customer_receipts") == "on",
                merchant_notices=form.get_one("merchant_notices") == "on",
            )  # fmt: skip
        except merchants.MerchantError as refused:
            return _settings(request, current, project, error=str(refused), status_code=422)
    context.credentials.invalidate(project.id)
    return see_other(project_url(project, "/settings?done=settings-saved"))
