"""Rate limits: failed logins per username and per client address, requests per API key.

Counts are kept in memory, so each process counts on its own and forgets on restart:
behind a load balancer with N replicas a client gets up to N times each allowance. They
are only touched on the event loop thread, so they need no lock.
"""

import math
import time
from collections import OrderedDict

from voxgate.config import Settings
from voxgate.errors import TooManyRequests

# Open windows kept per limit (about 300 bytes each with its key); past this the oldest go.
MAX_KEYS = 50_000


class FixedWindow:
    """At most `limit` events per key in a window of `seconds` that opens with the key's
    first event; a key that has used them all waits until its window closes.

    Memory is bounded: closed windows are dropped as new events come, and past `max_keys`
    open windows the oldest is dropped first (so a flood of new keys can free an old key
    early; the per-address login limit makes such a flood need many addresses).
    """

    def __init__(self, limit: int, seconds: float, max_keys: int = MAX_KEYS):
        self.limit, self.seconds, self.max_keys = limit, seconds, max_keys
        # key -> [closes_at, count]. Every window lasts `seconds`, so the order in which
        # they opened is the order in which they close: the closed ones are at the front.
        self._windows: OrderedDict[str, list] = OrderedDict()

    def _open(self, key: str) -> list | None:
        now = time.monotonic()
        while self._windows and next(iter(self._windows.values()))[0] <= now:
            self._windows.popitem(last=False)
        return self._windows.get(key)

    def wait(self, key: str) -> int:
        """Whole seconds until `key` may act again; 0 if it may now."""
        window = self._open(key)
        if window is None or window[1] < self.limit:
            return 0
        return max(1, math.ceil(window[0] - time.monotonic()))

    def hit(self, key: str) -> None:
        window = self._open(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                self._windows.popitem(last=False)
            window = self._windows[key] = [time.monotonic() + self.seconds, 0]
        window[1] += 1

    def forgive(self, key: str) -> None:
        """Take back one event (an attempt that went well)."""
        if window := self._open(key):
            window[1] -= 1


class Limits:
    """The app's rate limits, sized by the settings."""

    def __init__(self, settings: Settings):
        self.login_users = FixedWindow(settings.login_failures_per_user, settings.login_window_seconds)
        self.login_addresses = FixedWindow(settings.login_failures_per_address, settings.login_window_seconds)
        self.api_keys = (
            FixedWindow(settings.api_key_requests, settings.api_key_window_seconds)
            if settings.api_key_requests
            else None
        )

    def login_attempt(self, username: str, address: str) -> None:
        """Refuse a login while its username or address is out of attempts, else count it as
        failed until `login_succeeded`. Attempts in flight count, so a burst of parallel
        guesses gets no more tries than guesses one after another. Unknown names count like
        known ones, so the limit tells nothing about which names exist."""
        for window, key, what in (
            (self.login_users, username, "this username"),
            (self.login_addresses, address, "this address"),
        ):
            if wait := window.wait(key):
                raise TooManyRequests(
                    f"too many failed logins for {what}; try again in {wait} s",
                    code="too_many_logins",
                    retry_after=wait,
                )
        self.login_users.hit(username)
        self.login_addresses.hit(address)

    def login_succeeded(self, username: str, address: str) -> None:
        self.login_users.forgive(username)
        self.login_addresses.forgive(address)

    def api_key_request(self, key_hash: str) -> None:
        """Count a request made with an API key, or refuse it once the key's window is full."""
        if self.api_keys is None:
            return
        if wait := self.api_keys.wait(key_hash):
            raise TooManyRequests(
                f"this API key made {self.api_keys.limit} requests in {self.api_keys.seconds:g} s; "
                f"try again in {wait} s",
                retry_after=wait,
            )
        self.api_keys.hit(key_hash)
