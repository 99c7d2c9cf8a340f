"""Tickets, CSRF tokens, TOTP and API-token parsing as pve-access-control / pve-http-server do them.

Tickets look like PVE's (``PVE:<userid>:<HEXTIME>::<signature>``) and are signed with a per-server key;
they are valid from 5 minutes "in the future" (clock skew) to 2 hours old. A TFA half-ticket carries
``!tfa!`` instead of a user id and authenticates nothing but the TFA step. Times come from the server
clock so tests can expire tickets without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from urllib.parse import unquote

TICKET_LIFETIME = 2 * 3600
CLOCK_SKEW = 300
_TOKEN_RE = re.compile(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)")
_COOKIE_AUTH_RE = re.compile(r"(?:^|\s)PVEAuthCookie=([^;\s]*)")


@dataclass(frozen=True)
class TicketInfo:
    userid: str
    issued: int
    tfa_pending: bool = False
    challenge: str = ""


class TicketSigner:
    """Creates and verifies tickets and CSRF prevention tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, data: str) -> str:
        mac = hmac.new(self._secret, data.encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode().rstrip("=")

    def ticket(self, userid: str, now: int) -> str:
        data = f"PVE:{userid}:{now:08X}"
        return f"{data}::{self._sign(data)}"

    def tfa_ticket(self, userid: str, now: int, challenge: str) -> str:
        data = f"PVE:!tfa!{_b64(userid)}!{_b64(challenge)}:{now:08X}"
        return f"{data}::{self._sign(data)}"

    def verify(self, ticket: str, now: int) -> TicketInfo | None:
        """The ticket's content if it is authentic and not expired, else None."""
        data, sep, sig = ticket.partition("::")
        if not sep or not hmac.compare_digest(self._sign(data), sig):
            return None
        parts = data.split(":")
        if len(parts) != 3 or parts[0] != "PVE":
            return None
        try:
            issued = int(parts[2], 16)
        except ValueError:
            return None
        age = now - issued
        if age < -CLOCK_SKEW or age > TICKET_LIFETIME:
            return None
        who = parts[1]
        if who.startswith("!tfa!"):
            user_b, _, challenge_b = who[5:].partition("!")
            try:
                return TicketInfo(_unb64(user_b), issued, tfa_pending=True, challenge=_unb64(challenge_b))
            except ValueError:
                return None
        return TicketInfo(who, issued)

    def csrf_token(self, userid: str, now: int) -> str:
        stamp = f"{now:08X}"
        return f"{stamp}:{self._sign(f'{stamp}:{userid}')}"

    def verify_csrf(self, token: str, userid: str, now: int) -> bool:
        stamp, sep, sig = token.partition(":")
        if not sep or not hmac.compare_digest(self._sign(f"{stamp}:{userid}"), sig):
            return False
        try:
            age = now - int(stamp, 16)
        except ValueError:
            return False
        return -CLOCK_SKEW <= age <= TICKET_LIFETIME


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def totp(secret_b32: str, now: float, *, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP code (SHA-1, 30 s) of a base32 secret at ``now``."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = struct.pack(">Q", int(now) // step)
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{code:0{digits}d}"


def totp_valid(secret_b32: str, code: str, now: float) -> bool:
    """Accept the current code and one step either side, like PVE's TOTP check."""
    code = code.strip()
    return any(hmac.compare_digest(totp(secret_b32, now + d * 30), code) for d in (-1, 0, 1))


def parse_cookie_ticket(cookie_header: str | None, authorization: str | None) -> str | None:
    """The ``PVEAuthCookie`` value from the Cookie header or an ``Authorization: PVEAuthCookie=`` header."""
    for header in (cookie_header, authorization):
        if header:
            match = _COOKIE_AUTH_RE.search(header.replace(";", "; "))
            if match and match.group(1):
                return unquote(match.group(1))
    return None


def parse_api_token(authorization: str | None) -> str | None:
    """The raw ``USER@REALM!TOKENID=SECRET`` value of a ``PVEAPIToken`` Authorization header."""
    if not authorization:
        return None
    match = _TOKEN_RE.search(authorization)
    if not match:
        return None
    return unquote(match.group(1).strip())
