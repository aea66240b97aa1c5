"""Invoice creation answers with the payment as its stored row reads."""

from __future__ import annotations

from fulmen.db import query
from fulmen.models import InvoiceRequest, Payment, WalletAuth


async def test_a_new_invoice_is_answered_as_its_row_reads(fulmen_db):
    await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    auth = WalletAuth(wallet_id=bob.id, account_id=bob.raw["user"], kind="invoice")
    request = InvoiceRequest(
        amount_msat=1_234_000, memo="lunch ☕", expiry=600, webhook="https://example.com/hook",
        extra={"tag": "pos", "items": (1, 2)},
    )
    created = await fulmen_db.host.payments.create_invoice(auth, request)
    rows = await query("SELECT * FROM fulmen_payment WHERE id = {}", created.id)
    assert created == Payment.from_row(rows[0])
    assert created.id > 0 and created.status == "pending" and created.tag == "pos"
    assert created.extra == {"tag": "pos", "items": [1, 2]}  # as JSON keeps it

    # ... and over the API, the answer is the payment as a later read shows it.
    r = await fulmen_db.client.post(
        "/api/v1/payments", headers=bob.invoice_headers,
        json={"out": False, "amount": 5, "memo": "second"},
    )
    assert r.status_code == 201, r.text
    answer = r.json()
    rows = await query("SELECT * FROM fulmen_payment WHERE payment_hash = {}", answer["payment_hash"])
    assert answer == Payment.from_row(rows[0]).to_lnbits()
