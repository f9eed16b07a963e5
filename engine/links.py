"""What the signed links in messages do when followed (the HTTP API serves them, issue 5).

An unsubscribe link carries a token signed for "unsubscribe" with the subscriber's id and the
channel of the message; following it becomes an `unsubscribed` event for that channel, so it is
recorded in the consent history like any other withdrawal (SPEC §2).
"""

from __future__ import annotations

import json
from datetime import datetime

from channels.tokens import BadToken, Signer
from engine.events import Event


def unsubscribe_event(signer: Signer, token: str, at: datetime, seq: int = 0) -> Event:
    """The event an unsubscribe link stands for; BadToken if it was not made by us."""
    payload = signer.verify("unsubscribe", token)
    try:
        claims = json.loads(payload)
        subscriber, channel = str(claims["s"]), str(claims["c"])
    except (ValueError, KeyError, TypeError):
        raise BadToken("the unsubscribe token does not say who and which channel") from None
    if channel not in ("push", "email"):
        raise BadToken("the unsubscribe token names no channel one can leave")
    return Event(subscriber, "unsubscribed", at, {"channels": [channel], "via": "link"},
                 None, seq)
