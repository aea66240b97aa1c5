"""Nostr events (NIP-01) and the NIP-57 rules: checking a zap request
(kind 9734, Appendix D) and building a zap receipt (kind 9735, Appendix E).

Signatures are BIP-340 Schnorr over secp256k1, made and checked by
coincurve (bindings to Bitcoin Core's libsecp256k1).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from coincurve import PrivateKey, PublicKeyXOnly
from fulmen import BadRequest

ZAP_REQUEST_KIND = 9734
ZAP_RECEIPT_KIND = 9735
MAX_REQUEST_CHARS = 20_000
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")
# NIP-33 address: <kind>:<pubkey>:<d tag>
ADDRESS = re.compile(r"^[0-9]{1,10}:[0-9a-f]{64}:.{0,1000}$", re.DOTALL)


def serialize(event: dict[str, Any]) -> str:
    """NIP-01: the string whose sha256 is the event id."""
    return json.dumps(
        [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]],
        separators=(",", ":"), ensure_ascii=False,
    )


def event_id(event: dict[str, Any]) -> str:
    return hashlib.sha256(serialize(event).encode()).hexdigest()


def sign(key: PrivateKey, kind: int, created_at: int, tags: list[list[str]],
         content: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "pubkey": key.public_key_xonly.format().hex(),
        "created_at": created_at,
        "kind": kind,
        "tags": tags,
        "content": content,
    }
    event["id"] = event_id(event)
    event["sig"] = key.sign_schnorr(bytes.fromhex(event["id"])).hex()
    return {k: event[k] for k in ("id", "pubkey", "created_at", "kind", "tags", "content", "sig")}


def signature_valid(event: dict[str, Any]) -> bool:
    try:
        key = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
        return bool(key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"])))
    except (ValueError, TypeError):
        return False


def refuse(reason: str) -> BadRequest:
    return BadRequest(f"invalid zap request: {reason}")


def check_shape(event: Any) -> dict[str, Any]:
    """NIP-01 field types; raises BadRequest naming the field."""
    if not isinstance(event, dict):
        raise refuse("nostr must be a JSON object (a Nostr event)")
    for name, pattern, size in (("id", HEX64, 32), ("pubkey", HEX64, 32), ("sig", HEX128, 64)):
        value = event.get(name)
        if not isinstance(value, str) or not pattern.match(value):
            raise refuse(f"{name} must be lower-case hex of {size} bytes")
    created_at = event.get("created_at")
    if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
        raise refuse("created_at must be a whole number of seconds")
    if isinstance(event.get("kind"), bool) or not isinstance(event.get("kind"), int):
        raise refuse("kind must be a number")
    if not isinstance(event.get("content"), str):
        raise refuse("content must be a string")
    tags = event.get("tags")
    if not isinstance(tags, list) or not all(
        isinstance(tag, list) and tag and all(isinstance(v, str) for v in tag) for tag in tags
    ):
        raise refuse("tags must be a list of non-empty lists of strings")
    return event


def tag_values(event: dict[str, Any], name: str) -> list[list[str]]:
    return [tag[1:] for tag in event["tags"] if tag[0] == name]


def check_zap_request(raw: str, amount_msat: int, lnurls: list[str]) -> dict[str, Any]:
    """NIP-57 Appendix D: the checks a server makes on the callback's `nostr`
    parameter. Returns the event; raises BadRequest with the reason."""
    if len(raw) > MAX_REQUEST_CHARS:
        raise refuse(f"longer than {MAX_REQUEST_CHARS} characters")
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise refuse("nostr is not JSON") from None
    event = check_shape(parsed)
    if event["kind"] != ZAP_REQUEST_KIND:
        raise refuse(f"kind must be {ZAP_REQUEST_KIND}, not {event['kind']}")
    if event_id(event) != event["id"]:
        raise refuse("id is not the sha256 of the serialized event")
    if not signature_valid(event):
        raise refuse("signature does not verify (BIP-340)")
    p = tag_values(event, "p")
    if len(p) != 1:
        raise refuse(f"must have exactly one p tag, not {len(p)}")
    if not p[0] or not HEX64.match(p[0][0]):
        raise refuse("the p tag must be a 32-byte hex public key")
    e = tag_values(event, "e")
    if len(e) > 1:
        raise refuse(f"must have at most one e tag, not {len(e)}")
    if e and (not e[0] or not HEX64.match(e[0][0])):
        raise refuse("the e tag must be a 32-byte hex event id")
    a = tag_values(event, "a")
    if len(a) > 1:
        raise refuse(f"must have at most one a tag, not {len(a)}")
    if a and (not a[0] or not ADDRESS.match(a[0][0])):
        raise refuse("the a tag must be an event address <kind>:<pubkey>:<d>")
    relays = tag_values(event, "relays")
    if not relays or not any(relays):
        raise refuse("must have a relays tag listing at least one relay")
    amounts = tag_values(event, "amount")
    if amounts:
        if len(amounts) > 1 or not amounts[0]:
            raise refuse("must have at most one amount tag, with a value")
        if amounts[0][0] != str(amount_msat):
            raise refuse(f"the amount tag ({amounts[0][0]} msat) differs from the callback's "
                         f"amount ({amount_msat} msat)")
    lnurl = tag_values(event, "lnurl")
    if lnurl:
        if len(lnurl) > 1 or not lnurl[0]:
            raise refuse("must have at most one lnurl tag, with a value")
        if lnurl[0][0].lower() not in lnurls:
            raise refuse("the lnurl tag is not this pay link's LNURL")
    return event


def relays_of(event: dict[str, Any]) -> list[str]:
    """The relay URLs of the request's `relays` tag(s), in order, without repeats."""
    seen: list[str] = []
    for values in tag_values(event, "relays"):
        for url in values:
            url = url.strip()
            if url and url not in seen:
                seen.append(url)
    return seen


def zap_receipt(key: PrivateKey, request_raw: str, bolt11: str, preimage: str | None,
                paid_at: int) -> dict[str, Any]:
    """NIP-57 Appendix E: the kind 9735 event for a paid zap request."""
    request = json.loads(request_raw)
    tags: list[list[str]] = [["p", tag_values(request, "p")[0][0]]]
    for name in ("e", "a"):
        values = tag_values(request, name)
        if values:
            tags.append([name, values[0][0]])
    tags.append(["P", request["pubkey"]])
    tags.append(["bolt11", bolt11])
    tags.append(["description", request_raw])
    if preimage:
        tags.append(["preimage", preimage])
    return sign(key, ZAP_RECEIPT_KIND, paid_at, tags, "")
