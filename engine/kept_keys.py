"""Refusing to make new keys in place of lost ones that the database depends on.

`serve`, `worker` and `dispatch` create the VAPID key and the signing secret when they are
missing, so that a first start needs no set-up. On a database that is already in use, a
missing key almost always means a lost one (a new machine or container without the keys
folder), and a new key would break what was made with the old one, silently:

- every unsubscribe and tracking link in the messages already sent (they are signed), and the
  signature that webhook receivers check, for the signing secret;
- every browser's push subscription (made for the old VAPID public key: the push services
  refuse the new signature), for the VAPID key.

So they stop with a message that says how to restore the key, or how to make a new one on
purpose (`nurture keys`).
"""

from __future__ import annotations

from engine.config import ConfigError, Settings
from engine.store import queries
from engine.store.database import Database


def refuse_lost_keys(settings: Settings, database: Database, vapid: bool = True) -> None:
    """Raise `ConfigError` if a key that would be created now is one the data needs
    (`vapid=False`: the caller does not create the VAPID key)."""
    new_secret = not settings.secret and not settings.secret_file.exists()
    new_vapid = vapid and not settings.vapid_private_key and not settings.vapid_key_file.exists()
    if not (new_secret or new_vapid):
        return
    with database.reading() as connection:
        sent = new_secret and queries.anything_sent(connection)
        subscribed = new_vapid and queries.any_live_push_subscription(connection)
    if sent:
        raise ConfigError(
            f"the signing secret ({settings.secret_file}) is missing, but this database holds "
            "messages sent with links it signed: restore the file (or set NURTURE_SECRET). "
            "To start over with a new secret, run `nurture keys` first: every unsubscribe and "
            "tracking link already sent will stop working, and webhook receivers must be "
            "given the new secret")
    if subscribed:
        raise ConfigError(
            f"the VAPID key ({settings.vapid_key_file}) is missing, but this database holds "
            "browsers' push subscriptions made for it: restore the file (or set "
            "NURTURE_VAPID_PRIVATE_KEY). To start over with a new key, run `nurture keys` "
            "first: push services refuse messages to those subscriptions until each browser "
            "subscribes again (nurture.js does it on the subscriber's next visit)")
