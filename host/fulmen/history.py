"""Payment history queries: LNbits's filters, turned into one indexed SQL query.

Filters come as query parameters: `status=success`, `amount[ge]=1000`,
`memo[like]=coffee`, `time[lt]=2026-01-01`, `tag[in]=lnurlp,tpos`, plus
`search`, `out=true|false`, `sortby`, `direction`, `limit`, `offset`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .db import query
from .errors import BadRequest, Forbidden
from .models import Payment

# API field -> column. Amount and fee are msat, as in responses.
FIELDS = {
    "status": "status",
    "tag": "tag",
    "checking_id": "checking_id",
    "payment_hash": "payment_hash",
    "amount": "amount_msat",
    "fee": "fee_msat",
    "memo": "memo",
    "time": "created_at",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "bolt11": "bolt11",
}
# No `preimage` filter: matching guesses against an unpaid invoice's
# preimage would reveal it, and it is hidden everywhere else until paid.
INT_FIELDS = {"amount", "fee", "time", "created_at", "updated_at"}
OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<=", "in": "IN", "ex": "NOT IN",
       "like": "LIKE"}
SORTABLE = {"time": "created_at", "created_at": "created_at", "amount": "amount_msat",
            "fee": "fee_msat", "status": "status", "memo": "memo", "updated_at": "updated_at"}
PARAM = re.compile(r"^([a-z_]+)(?:\[([a-z]+)\])?$")
RESERVED_PARAMS = {"limit", "offset", "sortby", "direction", "search", "out", "api-key",
                   "recheck_pending", "all_wallets", "format", "wallet_id"}
MAX_LIMIT = 1000


INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def bounded(value: int, what: str) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise BadRequest(f"{what} is out of range")
    return value


def parse_time(value: str) -> int:
    """Unix seconds or ISO 8601 (UTC unless it says otherwise), to Unix ms."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"time value {value!r} is neither Unix seconds nor ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if seconds != seconds or abs(seconds) > 1e15:
        raise BadRequest(f"time value {value!r} is out of range")
    return int(seconds * 1000)


def convert(name: str, value: str) -> Any:
    if name in ("time", "created_at", "updated_at"):
        return parse_time(value)
    if name in INT_FIELDS:
        try:
            return bounded(int(value), f"filter {name!r}")
        except ValueError:
            raise BadRequest(f"filter {name!r} needs a whole number of msat, got {value!r}") from None
    return value


@dataclass
class HistoryQuery:
    wallet_id: str
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    order: str = "created_at DESC, id DESC"
    limit: int | None = None
    offset: int = 0

    @classmethod
    def from_params(cls, wallet_id: str, params: Mapping[str, str]) -> HistoryQuery:
        q = cls(wallet_id=wallet_id)
        # LNbits clients may name the wallet: it must be the key's own.
        if "wallet_id" in params and params["wallet_id"] != wallet_id:
            raise Forbidden("wallet_id names another wallet than the one this key opens")
        for key, value in params.items():
            if key in RESERVED_PARAMS:
                continue
            match = PARAM.match(key)
            if not match or match.group(1) not in FIELDS:
                raise BadRequest(f"unknown filter {key!r}; filterable fields: {', '.join(sorted(FIELDS))}")
            name, op = match.group(1), match.group(2) or "eq"
            if op not in OPS:
                raise BadRequest(f"unknown operator {op!r} in {key!r}; use one of {', '.join(OPS)}")
            column = FIELDS[name]
            if op in ("in", "ex"):
                values = [convert(name, v) for v in value.split(",") if v != ""]
                if not values:
                    raise BadRequest(f"filter {key!r} needs at least one value")
                q.where.append(f"{column} {OPS[op]} ({', '.join('{}' for _ in values)})")
                q.args.extend(values)
            elif op == "like":
                if name in INT_FIELDS:
                    raise BadRequest(f"like works on text fields, not on {name!r}")
                q.where.append(f"LOWER({column}) LIKE {{}}")
                q.args.append(f"%{value.lower()}%")
            else:
                q.where.append(f"{column} {OPS[op]} {{}}")
                q.args.append(convert(name, value))
        if search := params.get("search"):
            q.where.append("(LOWER(memo) LIKE {} OR payment_hash LIKE {})")
            q.args.extend([f"%{search.lower()}%", f"{search.lower()}%"])
        if (out := params.get("out")) is not None:
            if out not in ("true", "false"):
                raise BadRequest("out must be true or false")
            q.where.append("out = {}")
            q.args.append(out == "true")
        sortby = params.get("sortby", "time")
        if sortby not in SORTABLE:
            raise BadRequest(f"cannot sort by {sortby!r}; use one of {', '.join(SORTABLE)}")
        direction = params.get("direction", "desc").lower()
        if direction not in ("asc", "desc"):
            raise BadRequest("direction must be asc or desc")
        # id breaks ties, so pages never overlap or skip rows
        q.order = f"{SORTABLE[sortby]} {direction.upper()}, id {direction.upper()}"
        q.limit = int_param(params, "limit", None)
        if q.limit is not None and not 0 < q.limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        q.offset = int_param(params, "offset", 0) or 0
        if q.offset < 0:
            raise BadRequest("offset must not be negative")
        return q

    def _where_sql(self) -> tuple[str, list[Any]]:
        clauses = ["wallet_id = {}"] + self.where
        return " AND ".join(clauses), [self.wallet_id] + self.args

    async def rows(self) -> list[dict[str, Any]]:
        where, args = self._where_sql()
        sql = f"SELECT * FROM fulmen_payment WHERE {where} ORDER BY {self.order}"
        if self.limit is not None:
            sql += " LIMIT {}"
            args.append(self.limit)
        if self.offset:
            if self.limit is None:
                sql += " LIMIT {}"
                args.append(2**62)
            sql += " OFFSET {}"
            args.append(self.offset)
        return await query(sql, *args)

    async def total(self) -> int:
        where, args = self._where_sql()
        rows = await query(f"SELECT COUNT(*) AS n FROM fulmen_payment WHERE {where}", *args)
        return int(rows[0]["n"])


def int_param(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return bounded(int(value), name)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None


# --- CSV export (the API's export.csv and the web page's download) --------------------

CSV_FIELDS = ["time", "payment_hash", "status", "amount", "fee", "memo", "tag", "checking_id", "bolt11"]


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading quote (memos
    of outgoing payments are written by whoever issued the invoice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def csv_pages(q: HistoryQuery, page_size: int = 1000) -> AsyncIterator[str]:
    """The query's payments as CSV text, a page of rows at a time."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    q.limit, q.offset = page_size, 0
    while True:
        page = await q.rows()
        for row in page:
            p = Payment.from_row(row).to_lnbits()
            writer.writerow([spreadsheet_safe(p[f]) for f in CSV_FIELDS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
        if len(page) < q.limit:
            return
        q.offset += q.limit
