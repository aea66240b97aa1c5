from fulmen import PaymentFilter, PluginHost, hookimpl
from fulmen.testing import plugin
from litestar import get


class Echo:
    @hookimpl
    def register_routes(self):
        @get("/whoami")
        async def whoami(host: PluginHost) -> dict:
            return {"signup": host.settings.allow_signup, "plugin": host.plugin_id,
                    "sees_admin_key": hasattr(host, "admin_key") or hasattr(host, "registry")}

        return [whoami]


async def test_plugin_handlers_receive_the_host_as_a_dependency(fulmen):
    client = await fulmen.start(plugins=[plugin("echo", Echo())])
    r = await client.get("/echo/whoami")
    assert r.status_code == 200
    assert r.json() == {"signup": True, "plugin": "echo", "sees_admin_key": False}


class Tagged:
    seen: list = []

    @hookimpl
    def payment_filter(self):
        return PaymentFilter(tags=frozenset({"mine"}))

    @hookimpl
    def on_invoice_paid(self, payment):
        self.seen.append(payment.tag)


async def test_hook_payment_filter(fulmen):
    """`PaymentFilter(tags=...)`: hooks only for payments so tagged, and no row for others."""
    from fulmen.db import query

    probe = Tagged()
    await fulmen.start(plugins=[plugin("tagged", probe)])
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    plain = await fulmen.invoice(bob, 1)
    mine = await fulmen.invoice(bob, 1, extra={"tag": "mine"})
    for inv in (plain, mine):
        assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    await fulmen.drain()
    assert probe.seen == ["mine"]
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_hook_delivery")
    assert rows[0]["n"] == 1  # no row at all for the untagged payment


class Watching:
    @hookimpl
    def payment_filter(self):
        return PaymentFilter(watched_wallets_only=True)

    def __init__(self):
        self.seen: list = []

    @hookimpl
    def on_invoice_paid(self, payment):
        self.seen.append(payment.wallet_id)


async def test_hook_on_invoice_paid_respects_watched_wallets(fulmen_db):
    """A `watched_wallets_only` plugin gets the payments of the wallets it watches,
    from the moment it watches them until it stops, and no rows for others."""
    from fulmen.db import query, transaction

    probe = Watching()
    await fulmen_db.start(plugins=[plugin("watching", probe)])
    host = fulmen_db.host
    alice = await fulmen_db.wallet("alice", sats=10)
    bob = await fulmen_db.wallet("bob")
    carol = await fulmen_db.wallet("carol")

    async def pay(wallet):
        inv = await fulmen_db.invoice(wallet, 1)
        assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201

    await pay(bob)  # not watched yet
    context = host.context_for("watching")
    async with transaction():
        await context.watch_wallet(bob.id)
        await context.watch_wallet(bob.id)  # twice is once
    await pay(bob)
    await pay(carol)
    await context.watch_wallet(bob.id, False)
    await pay(bob)
    await fulmen_db.drain()
    assert probe.seen == [bob.id]
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_hook_delivery")
    assert rows[0]["n"] == 1
