"""Serve settings from a TOML file, and the sizes they are written in.

``sheafdb serve --config sheafdb.toml`` reads every serve flag from the file, under the flag's
own name (``memory-budget = "8GiB"``; ``memory_budget`` works too); a flag given on the
command line wins over the file. TOML is read with the standard library (tomllib).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import psutil

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_SHARE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


class SettingsError(ValueError):
    """A setting that cannot be read (the message says which and why)."""


def parse_size(text: str, *, total_bytes: int | None = None) -> int:
    """Bytes from ``8GiB``, ``512MiB``, ``2GB``, ``1000000`` or a share of RAM such as ``60%``."""
    share = _SHARE.fullmatch(text)
    if share is not None:
        percent = float(share.group(1))
        if not 0 < percent <= 100:
            raise SettingsError(f"a share of memory must be above 0% and at most 100%, not {text!r}")
        total = psutil.virtual_memory().total if total_bytes is None else total_bytes
        return int(total * percent / 100)
    size = _SIZE.fullmatch(text)
    unit = size.group(2).lower() if size is not None else None
    if size is None or unit not in _UNITS:
        raise SettingsError(f"not a size: {text!r} (write e.g. 8GiB, 512MiB, 2GB, 1000000 or 60%)")
    nbytes = int(float(size.group(1)) * _UNITS[unit])
    if nbytes <= 0:
        raise SettingsError(f"a size must be above zero, not {text!r}")
    return nbytes


def parse_workers(text: str) -> int:
    """``--workers``: a number of processes (1 or more), or ``auto`` (the cores this process
    may run on)."""
    value = text.strip().lower()
    if value == "auto":
        return len(os.sched_getaffinity(0))
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise SettingsError(f"--workers must be a number of processes (1 or more) or auto, not {text!r}")


# ``--role``: a stateless proxy, the coordinator (the writer lease's holder or a standby), or a
# shard writer (a log owner serving Insert / Upsert / Delete: engine/write/shard_writer.py).
ROLES = ("proxy", "writer", "shard-writer")


def check_cluster_flags(
    cluster: str | None, role: str, catalog: str | None, objects: str | None, workers: int
) -> None:
    """``--cluster ray://HOST:PORT`` needs the shared stores: PostgreSQL and S3."""
    if cluster is None:
        if role != "proxy":
            raise SettingsError(f"--role {role} needs --cluster ray://HOST:PORT")
        return
    host, _, port = cluster.removeprefix("ray://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(
            "--cluster must be a Ray address, ray://HOST:PORT (Ray Client) or HOST:PORT (the GCS),"
            f" not {cluster!r}"
        )
    if not (catalog or "").startswith(("postgresql://", "postgres://")):
        raise SettingsError("--cluster needs --catalog postgresql://... (the catalog every process shares)")
    if not (objects or "").startswith("s3://"):
        raise SettingsError("--cluster needs --objects s3://... (the segment files every process reads)")
    if workers > 1:
        raise SettingsError("--workers is for one machine; in cluster mode query workers run on Ray")
    if role not in ROLES:
        raise SettingsError(f"--role must be proxy, writer or shard-writer, not {role!r}")


def read_config_file(path: Path, known: Mapping[str, object]) -> dict[str, object]:
    """The file's settings by flag destination (``memory-budget`` -> ``memory_budget``).

    ``known`` maps each destination to its default, which gives the type a value must have.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the config file {path} is not valid TOML: {exc}") from exc
    settings: dict[str, object] = {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        if dest not in known or dest == "config":
            raise SettingsError(f"unknown setting {key!r} in {path} (the serve flags are the settings)")
        default = known[dest]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise SettingsError(f"setting {key!r} in {path} must be true or false")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"setting {key!r} in {path} must be a number")
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"setting {key!r} in {path} must be an integer")
        elif isinstance(default, Path):
            if not isinstance(value, str):
                raise SettingsError(f"setting {key!r} in {path} must be a path (a string)")
            value = Path(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a number where text is read (workers = 2, memory-budget = 1000000)
        elif not isinstance(value, str):
            raise SettingsError(f"setting {key!r} in {path} must be a string")
        settings[dest] = value
    return settings
