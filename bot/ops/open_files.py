"""The bot's open-file limit: every connection to a learner's cluster is a socket.

Over HTTP/2 (kube-apiserver's, which the bot asks for first) a learner's watches and reads
share one connection: the load bench counts about one socket per active learner. Over
HTTP/1.1 (a server or proxy without ALPN) a watch holds its own connection for as long as it
is open, and an active learner's check watches each kind its task needs: the bench counted
6.3-6.4 sockets per active learner. The budget below is sized for that worst case: a process
at the common default soft limit of 1,024 open files would then refuse connections past ~150
active learners, as "Too many open files" on reads.

:func:`raise_open_files` lifts the soft limit to the hard one at start-up (an unprivileged
process may; the hard limit itself is the operator's: docs/operating.md §3).
"""

from __future__ import annotations

import resource

FILES_PER_LEARNER = 8  # HTTP/1.1's ~6.4 sockets per active learner, with room; HTTP/2's ~1
RESERVED = 256  # the database, logs, the gateway, health and metrics listeners
CEILING = 1 << 20  # Linux's default fs.nr_open: the most a soft limit may be


def learners_within(limit: int) -> int:
    """About how many active learners ``limit`` open files carry."""
    return max(0, (limit - RESERVED) // FILES_PER_LEARNER)


def raise_open_files() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; the soft limit before and after.

    A hard limit of "unlimited" is taken as :data:`CEILING`. If the kernel refuses (a hard
    limit above ``fs.nr_open``), the soft limit stays as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft
