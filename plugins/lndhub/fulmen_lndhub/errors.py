"""LndHub's error answer: `{"error": true, "code": N, "message": "..."}`.

The codes are the protocol's: clients act on 1 (log in again) and 5 (no
route); the others are shown to the user. The HTTP status is never 2xx, so a
client that looks only at the status does not take a failure for success
either.
"""

from __future__ import annotations

BAD_AUTH = 1
NOT_ENOUGH_BALANCE = 2
NOT_A_VALID_INVOICE = 4
SERVER_ERROR = 6
NODE_FAILURE = 7
BAD_ARGUMENTS = 8
IN_TRANSIT = 9
PAYMENT_FAILED = 10


class LndHubError(Exception):
    def __init__(self, code: int, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code

    def body(self) -> dict[str, object]:
        # "error" first: BTCPay Server recognises an error by the body's start
        return {"error": True, "code": self.code, "message": self.message}


def bad_auth(message: str = "bad auth") -> LndHubError:
    return LndHubError(BAD_AUTH, message, 401)


def bad_arguments(message: str) -> LndHubError:
    return LndHubError(BAD_ARGUMENTS, message, 400)


def not_supported(what: str) -> LndHubError:
    return LndHubError(SERVER_ERROR, f"{what} is not supported by this host (Lightning only)", 501)
