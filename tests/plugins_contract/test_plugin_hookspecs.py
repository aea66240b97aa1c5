"""Plugins extending plugins: a plugin declares hooks (`register_hookspecs`),
others implement them, and the declaring plugin calls them through
`host.hooks.call_plugins` with the same isolation as the host's hooks."""

from __future__ import annotations

import types
from typing import Any

import pytest
from fulmen import BadRequest, hookimpl, hookspec
from fulmen.testing import plugin


def shop_specs() -> types.ModuleType:
    specs = types.ModuleType("shop_hookspecs")

    @hookspec
    def shop_discount(host: Any, price: int) -> int | None:
        """A discount in msat for an order of `price` msat."""

    specs.shop_discount = shop_discount  # type: ignore[attr-defined]
    return specs


class Shop:
    @hookimpl
    def register_hookspecs(self) -> types.ModuleType:
        return shop_specs()


class Discount:
    def __init__(self, amount: int) -> None:
        self.amount = amount

    @hookimpl(optionalhook=True)
    async def shop_discount(self, price: int) -> int:
        return min(self.amount, price)


class Broken:
    @hookimpl(optionalhook=True)
    def shop_discount(self) -> int:
        raise RuntimeError("broken discount")


class Refuses:
    @hookimpl(optionalhook=True)
    def shop_discount(self, price: int) -> None:
        if price > 1000:
            raise BadRequest("orders above 1000 msat are refused")


async def test_hook_register_hookspecs(fulmen):
    # implementations registered before the plugin that declares the hook still count
    await fulmen.start(plugins=[plugin("ten", Discount(10)), plugin("broken", Broken()),
                                plugin("refuses", Refuses()), plugin("shop", Shop())])
    hooks = fulmen.host.hooks
    assert hooks.implemented("shop_discount") and not hooks.implemented("nobody_declared_this")
    results = await hooks.call_plugins("shop_discount", may_refuse=True, price=100)
    assert results == [("ten", 10)]  # broken's exception is contained
    assert "broken discount" in fulmen.host.plugins["broken"].error
    with pytest.raises(BadRequest, match="above 1000"):
        await hooks.call_plugins("shop_discount", may_refuse=True, price=5000)
    # without may_refuse a refusal is contained like any failure
    assert await hooks.call_plugins("shop_discount", price=5000) == [("ten", 10)]
    # disabled plugins are not called
    await fulmen.host.set_plugin_enabled("ten", False)
    assert await hooks.call_plugins("shop_discount", price=100) == []
    for other in ("broken", "refuses"):
        await fulmen.host.set_plugin_enabled(other, False)
    assert not hooks.implemented("shop_discount")
    # a hook nobody declared or implemented
    assert await hooks.call_plugins("nobody_declared_this", price=1) == []


async def test_implementing_an_absent_plugins_hook_is_fine_when_optional(fulmen):
    class Strict:
        @hookimpl
        def shop_discount(self, price: int) -> int:
            return 1

    client = await fulmen.start(plugins=[plugin("ten", Discount(10)), plugin("strict", Strict())])
    states = {p["id"]: p for p in
              (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()}
    assert states["ten"]["state"] == "enabled"  # optionalhook: the shop is not installed
    assert states["strict"]["state"] == "failed"
    assert "shop_discount" in states["strict"]["last_error"]


async def test_a_spec_the_implementation_does_not_fit_is_refused(fulmen):
    class Misfit:
        @hookimpl(optionalhook=True)
        def shop_discount(self, price: int, coupon: str) -> int:
            return 1

    client = await fulmen.start(plugins=[plugin("misfit", Misfit()), plugin("shop", Shop())])
    states = {p["id"]: p for p in
              (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()}
    assert states["misfit"]["state"] == "enabled"
    assert states["shop"]["state"] == "failed"  # its spec does not fit an implementation
    assert "coupon" in states["shop"]["last_error"]
