"""Schemathesis hooks of tests/schemathesis/run.sh.

clickback limits failed authentications per source address (API.md §8):
after 100 failures in a burst, everything from that address answers 429
until a try grows back. A fuzzer that sends unauthenticated requests on
purpose (to check they get 401) would trip it within seconds and leave the
rest of the run untested. run.sh starts clickback with 127.0.0.1 as a
trusted proxy, and each request here names its own client address, from the
IPv6 documentation prefix (never an address anything is sent to).
"""

import itertools

import schemathesis

_client = itertools.count(1)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers is None:
        case.headers = {}
    case.headers["X-Forwarded-For"] = f"2001:db8::{next(_client):x}"
