"""Residency policies: which loaded collections may leave memory on their own, and in what order.

Set as collection properties (at create or with ``alter_collection_properties``; kept in the
catalog, shown by ``describe_collection``):

- ``sheafdb.idle_release_seconds``: a loaded collection that served no read for that long is
  released by the keeper thread below;
- ``sheafdb.reload_on_read=true``: after such a release the next read loads the collection
  again (the same ``LoadRequest``) and is served, instead of failing with 101;
- ``sheafdb.pinned=true``: never released by a policy (idle or eviction);
- ``sheafdb.priority`` (integer, default 0): with ``--evict-under-pressure``, a load that would
  not fit releases idle, unpinned collections lowest priority first, least recently read first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sheafdb.engine.collection import Collection
from sheafdb.errors import SheafError, invalid

log = logging.getLogger(__name__)

IDLE_RELEASE_SECONDS = "sheafdb.idle_release_seconds"
RELOAD_ON_READ = "sheafdb.reload_on_read"
PINNED = "sheafdb.pinned"
PRIORITY = "sheafdb.priority"
POLICY_PROPERTIES = (IDLE_RELEASE_SECONDS, RELOAD_ON_READ, PINNED, PRIORITY)

# How often the keeper looks for idle collections (a release comes at most this late).
KEEPER_TICK_S = 0.5


@dataclass(frozen=True)
class ResidencyPolicy:
    idle_release_seconds: float | None = None
    reload_on_read: bool = False
    pinned: bool = False
    priority: int = 0


def _flag(properties: Mapping[str, str], key: str) -> bool:
    text = str(properties.get(key, "false")).strip().lower()
    if text not in ("true", "false"):
        raise invalid(f"invalid value for property {key}: {text!r}, expected true or false")
    return text == "true"


def policy_of(properties: Mapping[str, str]) -> ResidencyPolicy:
    """The policy in force; a wrong value (refused when set, so only from an older catalog) is
    read as no policy."""
    try:
        return residency_policy(properties)
    except SheafError:
        return ResidencyPolicy()


def residency_policy(properties: Mapping[str, str]) -> ResidencyPolicy:
    """The policy the properties set; code 1100 naming the property when a value is wrong."""
    idle: float | None = None
    if IDLE_RELEASE_SECONDS in properties:
        text = str(properties[IDLE_RELEASE_SECONDS]).strip()
        try:
            idle = float(text)
        except ValueError:
            idle = -1.0
        if not idle > 0:
            raise invalid(
                f"invalid value for property {IDLE_RELEASE_SECONDS}: {text!r}, expected seconds > 0"
            )
    priority = 0
    if PRIORITY in properties:
        text = str(properties[PRIORITY]).strip()
        try:
            priority = int(text)
        except ValueError:
            raise invalid(f"invalid value for property {PRIORITY}: {text!r}, expected an integer") from None
    return ResidencyPolicy(idle, _flag(properties, RELOAD_ON_READ), _flag(properties, PINNED), priority)


@dataclass(frozen=True)
class Resident:
    """A loaded collection as the keeper sees it."""

    collection: Collection
    policy: ResidencyPolicy
    idle_seconds: float
    last_read: float


def eviction_order(residents: list[Resident]) -> list[Resident]:
    """Who may be released to make room: unpinned, lowest priority first, then least recently read."""
    return sorted(
        (r for r in residents if not r.policy.pinned), key=lambda r: (r.policy.priority, r.last_read)
    )


class ResidencyKeeper:
    """One thread (``sheafdb-residency``) releasing collections idle past their policy."""

    def __init__(
        self, residents: Callable[[], list[Resident]], release_idle: Callable[[Collection], None]
    ) -> None:
        self._residents = residents
        self._release_idle = release_idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sheafdb-residency", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(KEEPER_TICK_S):
            try:
                for resident in self._residents():
                    idle_limit = resident.policy.idle_release_seconds
                    if (
                        idle_limit is not None
                        and not resident.policy.pinned
                        and resident.idle_seconds >= idle_limit
                    ):
                        self._release_idle(resident.collection)
            except Exception:  # noqa: BLE001 - the keeper must outlive any one collection's trouble
                log.exception("residency keeper pass failed")
