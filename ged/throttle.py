"""Password-guessing limits for sign-in (web form and POST /api/v1/tokens).

The rules, so that an attacker's failures never lock the rightful user out:

- Failures count per (account, client address) and per client address: past
  ``max_attempts`` for one pair, or four times that from one address, that address
  is refused for the rest of a fixed window. Other addresses are untouched, so
  guessing someone's password from one place does not lock them out elsewhere.
  (The client address is the real one behind trusted proxies: ged/proxies.py.)
- Failures also count per account across all addresses. Past ten times
  ``max_attempts`` in the window (a guess spread over many addresses), the account
  is not locked: its password is checked at most once every ``GATE_SECONDS``, and
  a refused attempt is told when to retry. A delay, not a lock-out.
- A browser that signed in successfully before gets a device cookie naming a
  random device id kept in Redis. Attempts carrying it count only against that
  device, so the account's owner signs in from their usual browser whatever others
  try. The id is random and known to the server, not derived from the secret key.
- Each attempt reserves its place atomically (one Redis script) before the
  password is checked, so concurrent guesses cannot slip past the limit together.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from . import fleet
from .errors import RateLimited

GATE_SECONDS = 2
ACCOUNT_FACTOR = 10  # failures per account (all addresses) before the delay starts
ADDRESS_FACTOR = 4  # an address may fail this many times the per-account allowance
DEVICE_DAYS = 180
DEVICE_COOKIE = "ged_device"

# KEYS: n counters, then the account's failure count and its gate.
# ARGV: window, n, n limits, the account threshold (0: no gate), the gate in ms.
# Returns {1, 0} when the attempt may go ahead (counters incremented), else
# {0, seconds to wait}.
_RESERVE = """
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  if v >= tonumber(ARGV[2 + i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = window end
    return {0, ttl}
  end
end
local threshold = tonumber(ARGV[3 + n])
if threshold > 0 then
  local fails = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if fails >= threshold then
    if not redis.call('SET', KEYS[n + 2], '1', 'NX', 'PX', ARGV[4 + n]) then
      local pttl = redis.call('PTTL', KEYS[n + 2])
      return {0, math.floor((pttl + 999) / 1000)}
    end
  end
end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], window) end
end
return {1, 0}
"""


# Undo one reservation, unless the window ended meanwhile (a DECR would then leave a
# counter without expiry).
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass
class Attempt:
    """One sign-in attempt's place, reserved by ``reserve``; report its outcome once."""

    keys: list[str]
    account_key: str
    device_key: str | None
    window: int
    allowed: bool
    retry_after: int = 0

    def refusal(self, what: str) -> RateLimited:
        """The error for a refused attempt (``what``: "failed attempts", "failed codes",
        "reset requests"), with when to try again (Retry-After)."""
        wait = self.retry_after
        message = (f"Too many {what}. Try again in a few minutes." if wait > 60
                   else f"Too many {what}. Try again in {wait} s.")
        return RateLimited(message, "too_many_attempts", retry_after=wait)

    def failed(self) -> None:
        """The password was wrong (or the account disabled): the reservation stays."""
        pipe = fleet.connection().pipeline()
        pipe.set(self.account_key, 0, nx=True, ex=self.window)  # a fixed window
        pipe.incr(self.account_key)
        pipe.execute()

    def succeeded(self) -> None:
        """A right password: this pair's failures are forgiven, and the attempt does
        not count against the address."""
        conn = fleet.connection()
        if self.device_key:
            conn.delete(self.device_key)
        else:
            conn.delete(self.keys[0])
            conn.register_script(_GIVE_BACK)(keys=[self.keys[1]])


def reserve(email: str, ip: str | None, *, max_attempts: int, window: int,
            device: str | None = None, scope: str = "login",
            account_factor: int = ACCOUNT_FACTOR, gate_seconds: int | None = None) -> Attempt:
    """Reserve an attempt to sign in as ``email`` from ``ip``. ``device``: the device
    cookie's id, given only when it was issued to this very account.

    ``scope`` keeps other guessable steps apart from passwords with the same rules
    (``totp``: the second factor; ``reset``: reset-link requests), each with its own
    account threshold (``account_factor`` times ``max_attempts``) and gate."""
    account_key = fleet.login_account_key(email, scope)
    gate_ms = int((GATE_SECONDS if gate_seconds is None else gate_seconds) * 1000)
    script = fleet.connection().register_script(_RESERVE)
    if device:
        keys = [fleet.login_device_key(device, scope)]
        limits = [max_attempts]
        threshold = 0
        device_key = keys[0]
    else:
        address = ip or "unknown"
        keys = [fleet.login_pair_key(email, address, scope),
                fleet.login_address_key(address, scope)]
        limits = [max_attempts, max_attempts * ADDRESS_FACTOR]
        threshold = max_attempts * account_factor
        device_key = None
    ok, wait = script(keys=keys + [account_key, fleet.login_gate_key(email, scope)],
                      args=[window, len(keys), *limits, threshold, gate_ms])
    return Attempt(keys, account_key, device_key, window, bool(ok), int(wait))


def remember_device(user_id: str) -> str:
    """A new device id for a browser that just signed in as ``user_id`` (the value of
    its device cookie)."""
    device = secrets.token_urlsafe(32)
    fleet.connection().set(fleet.device_key(device), user_id, ex=DEVICE_DAYS * 86400)
    return device


def device_owner(device: str | None) -> str | None:
    """The user id a device cookie was issued to, or None (unknown, expired, forged)."""
    if not device or not isinstance(device, str) or len(device) > 100:
        return None
    owner = fleet.connection().get(fleet.device_key(device))
    return owner.decode() if owner else None
