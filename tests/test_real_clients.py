"""Third-party Cryptomus client libraries from PyPI against a live `paydesk serve`.

`cryptomus` (the official SDK) sends compact JSON; `pyCryptomusAPI` sends `json.dumps`
output with spaces and query-string cursors. Both only change their base URL.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import cryptomus
import httpx
import pytest
from cryptomus.request_exceptions import RequestExceptionsBuilder
from pyCryptomusAPI import pyCryptomusAPI, pyCryptomusAPIException

from tests.conftest import create_pg_database, drop_pg_database, free_port, worker_id
from tests.live import (
    PAYDESK,
    LiveServer,
    create_live_merchant,
    live_server,
    paydesk_env,
    run_cli,
)
from tests.payouts.conftest import DESTINATION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_available
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live")
    pg_name = f"paydesk_live_{worker_id()}"
    database_url = None
    if request.param == "postgresql":
        if not postgres_available:
            pytest.skip("PostgreSQL is not reachable")
        database_url = create_pg_database(pg_name)
    env = paydesk_env(data_dir, database_url)
    try:
        if database_url:
            done = run_cli("migrate", env=env)
            assert done.returncode == 0, done.stderr
        merchant = create_live_merchant(env)
        with live_server(env, free_port()) as base_url:
            yield LiveServer(base_url, env, merchant)
    finally:
        if database_url:
            drop_pg_database(pg_name)


def official(live: LiveServer) -> cryptomus.Payment:
    payment = cryptomus.Client.payment(live.merchant.payment_key, live.merchant.merchant)
    payment.requestBuilder.api_url = live.base_url + "/"
    return payment


def popular(live: LiveServer) -> pyCryptomusAPI:
    return pyCryptomusAPI(
        live.merchant.merchant,
        payment_api_key=live.merchant.payment_key,
        payout_api_key=live.merchant.payout_key,
        api_url=live.base_url,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ cryptomus (official SDK)
def test_official_sdk_creates_reads_and_repeats(live: LiveServer):
    client = official(live)
    order_id = unique("sdk")
    created = client.create({"amount": "15", "currency": "USD", "order_id": order_id})
    assert created["order_id"] == order_id and created["status"] == "check"
    assert created["url"] == f"{live.base_url}/pay/{created['uuid']}"
    assert client.info({"uuid": created["uuid"]}) == created
    assert client.info({"order_id": order_id}) == created
    again = client.create({"amount": "15", "currency": "USD", "order_id": order_id})
    assert again["uuid"] == created["uuid"]


def test_official_sdk_crypto_invoice_and_services(live: LiveServer):
    client = official(live)
    created = client.create(
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": unique("usdt"),
         "url_callback": "https://shop.example/cryptomus/callback", "lifetime": "3600",
         "is_payment_multiple": True}
    )  # fmt: skip
    assert created["address"].startswith("pdev1")
    assert float(created["payer_amount"]) == 20.0
    services = client.services()
    assert {"network": "DEVNET", "currency": "USDT"}.items() <= services[0].items()


def test_official_sdk_history_with_its_body_cursor(live: LiveServer):
    client = official(live)
    for _ in range(3):
        client.create({"amount": "1", "currency": "USD", "order_id": unique("h")})
    page = client.history(page=1)  # sends "cursor": "1" in the body
    assert len(page["items"]) >= 3
    assert page["paginate"]["perPage"] == 15


def test_official_sdk_surfaces_errors(live: LiveServer):
    client = official(live)
    with pytest.raises(RequestExceptionsBuilder, match=r"Minimum amount 0\.5 USDT"):
        client.create({"amount": "0.1", "currency": "USDT", "order_id": unique("min")})
    with pytest.raises(RequestExceptionsBuilder) as raised:
        client.create({"amount": "1", "currency": "USD", "order_id": "has space"})
    assert raised.value.get_errors() == {"order_id": ["validation.alpha_dash"]}
    wrong = cryptomus.Client.payment("not-the-key", live.merchant.merchant)
    wrong.requestBuilder.api_url = live.base_url + "/"
    with pytest.raises(RequestExceptionsBuilder, match="Invalid Sign"):
        wrong.services()


# ------------------------------------------------------------------ pyCryptomusAPI
def test_popular_client_creates_reads_and_repeats(live: LiveServer):
    client = popular(live)
    order_id = unique("py")
    invoice = client.create_invoice(
        amount=25, currency="USD", order_id=order_id, to_currency="USDT", lifetime=900,
        url_return="https://shop.example/back", additional_data="user/42",
        is_payment_multiple=False, subtract=0, accuracy_payment_percent=1.5,
    )  # fmt: skip
    assert invoice.order_id == order_id
    assert invoice.payer_currency == "USDT" and invoice.payer_amount == 25.0
    assert invoice.address.startswith("pdev1")
    by_uuid = client.payment_information(invoice_uuid=invoice.uuid)
    by_order = client.payment_information(order_id=order_id)
    assert by_uuid.uuid == by_order.uuid == invoice.uuid
    again = client.create_invoice(amount=99, currency="USD", order_id=order_id)
    assert again.uuid == invoice.uuid


def test_popular_client_history_pages_with_query_cursors(live: LiveServer):
    client = popular(live)
    for _ in range(16):
        client.create_invoice(amount="2", currency="USD", order_id=unique("page"))
    first = client.payment_history()
    assert len(first.items) == 15 and first.paginate.hasPages is True
    second = client.payment_history(cursor=first.paginate.nextCursor)
    assert second.items and {i.uuid for i in second.items}.isdisjoint({i.uuid for i in first.items})
    dated = client.payment_history(date_from="2000-01-01 00:00:00", date_to="2999-01-01 00:00:00")
    assert len(dated.items) == 15


def test_popular_client_services_and_errors(live: LiveServer):
    client = popular(live)
    services = client.payment_services()
    assert any(s.currency == "BTC" and s.network == "DEVNET" for s in services)
    with pytest.raises(pyCryptomusAPIException) as raised:
        client.create_invoice(amount="1", currency="NOPE", order_id=unique("x"))
    assert raised.value.message == "The currency was not found"
    with pytest.raises(pyCryptomusAPIException) as raised:
        client.payment_information(invoice_uuid=str(uuid.uuid4()))
    assert raised.value.message == "Payment not found"


def test_popular_client_static_wallet_and_payout(live: LiveServer, tmp_path):
    """The client's own wallet and payout calls: a deposit on the wallet's address funds a
    payout that `paydesk worker` sends; the payout object decodes with its numbers."""
    client = popular(live)
    order_id = unique("w")
    wallet = client.create_wallet(network="devnet", currency="USDT", order_id=order_id)
    assert wallet.address.startswith("pdev1") and wallet.url.endswith(f"/wallet/{wallet.uuid}")
    again = client.create_wallet(network="DEVNET", currency="usdt", order_id=order_id)
    assert again.uuid == wallet.uuid
    assert client.wallet_qr_code(wallet.uuid).startswith("data:image/png;base64,")
    paid = run_cli("devnet", "pay", f"devnet:{wallet.address}?currency=USDT", "50", "--mine",
                   env=live.env)  # fmt: skip
    assert paid.returncode == 0, paid.stderr
    destination = DESTINATION
    worker_env = {
        **live.env,
        "PAYDESK_PAYOUT_POLL_SECONDS": "0.2",
        "PAYDESK_WATCHER_POLL_SECONDS": "0.2",
        "PAYDESK_DEVNET_BLOCK_SECONDS": "0.5",
    }
    with running_worker(worker_env, tmp_path / "worker.log"):
        payout = None
        for _ in range(100):  # until the deposit is credited
            try:
                payout = client.create_payout(
                    amount="10", currency="USDT", network="devnet", order_id=unique("po"),
                    address=destination, is_subtract=True,
                )  # fmt: skip
                break
            except pyCryptomusAPIException as refused:
                assert refused.message == "Not enough funds"
                time.sleep(0.1)
        assert payout is not None and payout.status == "process"
        # 50 less 10 and the devnet USDT payout fee (0.1): JSON numbers, as documented.
        assert (payout.payer_amount, payout.balance) == (10.0, 39.9)
        for _ in range(200):
            info = client.payout_information(payout_uuid=payout.uuid)
            if info.status == "paid":
                break
            time.sleep(0.1)
        assert (info.status, info.is_final) == ("paid", True) and info.txid
    history = client.payout_history()
    assert [item.uuid for item in history.items] == [payout.uuid]
    assert any(s.network == "DEVNET" and s.currency == "USDT" for s in client.payout_services())
    blocked = client.block_wallet(wallet_uuid=wallet.uuid)
    assert blocked["status"] == "blocked"
    with pytest.raises(pyCryptomusAPIException) as refused:
        client.block_wallet_refund(address=destination, wallet_uuid=wallet.uuid)
    assert refused.value.message == "Nothing to withdraw"


@contextmanager
def running_worker(env: dict[str, str], log) -> Iterator[None]:
    with log.open("ab") as output:
        process = subprocess.Popen([PAYDESK, "worker"], env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ------------------------------------------------------------------ raw bodies on the wire
def _signed_post(live: LiveServer, path: str, body: bytes) -> httpx.Response:
    sign = hashlib.md5(base64.b64encode(body) + live.merchant.payment_key.encode()).hexdigest()
    return httpx.post(
        live.base_url + path,
        content=body,
        headers={"merchant": live.merchant.merchant, "sign": sign,
                 "content-type": "application/json"},
    )  # fmt: skip


def test_php_style_escaped_slashes_and_raw_utf8(live: LiveServer):
    order_id = unique("php")
    body = (
        b'{"amount":"15","currency":"USD","order_id":"' + order_id.encode() + b'",'
        b'"url_callback":"https:\\/\\/shop.test\\/cb","additional_data":"user\\/42 '
        + "Привет".encode()
        + b'"}'
    )
    response = _signed_post(live, "/v1/payment", body)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["additional_data"] == "user/42 Привет"
