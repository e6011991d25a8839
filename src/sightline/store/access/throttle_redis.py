"""Login throttling in Redis, for installs that set ``SIGHTLINE_REDIS_URL``.

The same policy as ``throttle.LoginThrottle`` (the database's), kept in Redis so the counting costs
no database write: a count per subject that expires ``window_seconds`` after its last failure, and a
lock per subject that expires by itself. Keys are named under the install's id
(``Database.shared_name``), so two installs sharing one Redis keep their counts apart.
"""

from __future__ import annotations

from typing import Any

from .throttle import LoginThrottle, address_subject, user_subject

__all__ = ["RedisLoginThrottle"]


class RedisLoginThrottle:
    """``LoginThrottle``'s policy over Redis (a synchronous client: logins run on worker threads)."""

    def __init__(self, redis_url: str, prefix: str, policy: LoginThrottle | None = None) -> None:
        import redis

        self.policy = policy or LoginThrottle()
        self._redis: Any = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._prefix = prefix + ":"

    def _count(self, subject: str) -> str:
        return self._prefix + "count:" + subject

    def _lock(self, subject: str) -> str:
        return self._prefix + "lock:" + subject

    def wait_seconds(self, subjects: list[str]) -> float:
        """How long until these subjects may try again (0: now)."""
        pipe = self._redis.pipeline(transaction=False)
        for subject in subjects:
            pipe.pttl(self._lock(subject))
        return max([0.0, *(float(ms) / 1000 for ms in pipe.execute() if ms > 0)])

    def failed(self, username: str, address: str) -> float:
        """Count a failed login; answers how long the account or address is now locked out (0: not)."""
        wait = 0.0
        window_ms = self.policy.window_seconds * 1000
        for subject, free in (
            (user_subject(username), self.policy.free_account_failures),
            (address_subject(address), self.policy.free_address_failures),
        ):
            pipe = self._redis.pipeline(transaction=True)  # MULTI: the count and its expiry together
            pipe.incr(self._count(subject))
            pipe.pexpire(self._count(subject), window_ms)
            failures = int(pipe.execute()[0])
            if failures > free:
                p = self.policy
                seconds = min(p.first_lock_seconds * 2 ** min(failures - free - 1, 20), p.max_lock_seconds)
                lock = self._lock(subject)
                if self._redis.pttl(lock) < seconds * 1000:  # never shorten a lock
                    self._redis.set(lock, b"1", px=seconds * 1000)
                wait = max(wait, float(seconds))
        return wait

    def succeeded(self, username: str) -> None:
        """A login of ``username`` succeeded: its account's count starts again."""
        subject = user_subject(username)
        self._redis.delete(self._count(subject), self._lock(subject))

    def close(self) -> None:
        self._redis.close()
