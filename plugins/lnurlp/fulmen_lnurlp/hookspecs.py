"""Hooks lnurlp declares for other plugins (through the host's
`register_hookspecs`), so a plugin can extend pay links without lnurlp
importing it. nostrzaps (NIP-57 zaps) is built on them.

Implement them as `@hookimpl(optionalhook=True)`, so your plugin still
loads on a host without lnurlp. lnurlp calls them only for enabled plugins;
an exception other than a refusal is logged and ignored.
"""

from __future__ import annotations

from typing import Any

from fulmen import PluginHost, hookspec


@hookspec
def lnurlp_pay_request(host: PluginHost, link: dict[str, Any], response: dict[str, Any]) -> Any:
    """Extend the payRequest (LUD-06 first step) a pay link or Lightning Address serves.

    When: on each `GET /lnurlp/{link_id}` and `/.well-known/lnurlp/{username}`.
    Arguments: `host`; `link` (the link as the API serves it: `id`, `wallet`,
    `zaps`, `username`, ...); `response` (the payRequest so far; do not change it).
    Results: every enabled plugin is called; return a dict of fields to add
    (e.g. `{"allowsNostr": true}`), or None. Fields lnurlp sets itself are
    never replaced.
    """


@hookspec
def lnurlp_callback(
    host: PluginHost, link: dict[str, Any], params: dict[str, str], amount_msat: int,
    lnurls: list[str],
) -> Any:
    """Check and record a callback's extra query parameters, before the invoice is made.

    When: on each `GET /lnurlp/api/v1/lnurl/cb/{link_id}`, after lnurlp's own
    checks (amount range, comment) passed.
    Arguments: `host`; `link` (as in `lnurlp_pay_request`); `params` (every
    query parameter, decoded); `amount_msat` (the checked amount); `lnurls`
    (the bech32 LNURLs that lead to this callback, lower case: the link's and,
    with a username, its Lightning Address's).
    Results: every enabled plugin is called. Return None to leave the
    invoice alone, or `{"description": str, "extra": dict}`: the invoice's
    description hash becomes sha256 of `description` (instead of the
    metadata's), and `extra` is stored in the invoice's `extra` under the
    plugin's id. Raise `fulmen.BadRequest` (any `fulmen.FulmenError`) to
    refuse: the payer gets a LUD-06 error with the message, and no invoice
    is made. Two plugins choosing a description is refused too.
    """
