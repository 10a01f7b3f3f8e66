"""GetMetrics's ``system_info`` answer: Milvus's JSON topology, plus SheafDB's memory figures.

Milvus answers ``{"nodes_info": [{"identifier", "connected", "infos": {...}}]}`` with one entry
per component (``metricsinfo.SystemTopology``); each entry's ``infos`` carries ``has_error``,
``error_reason``, ``name``, ``hardware_infos`` (ip, cpu cores and usage, memory and its usage,
disk), ``system_info`` (version, deploy mode, build), ``created_time``, ``updated_time``,
``type`` and ``id``. SheafDB is one process, so it reports it twice, as Milvus's standalone
does: the proxy and the query node that holds the loaded data. The query node's ``infos`` (and
the top level, under ``"memory"``) add what the memory accountant counts: the budget, the bytes
used, reserved and free, and the resident bytes of each collection, field and index.
"""

from __future__ import annotations

import json
import platform
import socket
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import psutil

from sheafdb.engine.maintenance import MemoryFigures
from sheafdb.engine.resource_groups import NODE_ID

STARTED = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f %z")


def _hardware(data_dir: str) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(data_dir)
    return {
        "ip": socket.gethostname(),
        "cpu_core_count": psutil.cpu_count() or 1,
        "cpu_core_usage": psutil.cpu_percent(interval=None),
        "memory": memory.total,
        "memory_usage": psutil.Process().memory_info().rss,
        "disk": float(disk.total),
        "disk_usage": float(disk.used),
    }


def _node(
    role: str, identifier: int, version: str, hardware: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f %z")
    return {
        "identifier": identifier,
        "connected": [],
        "infos": {
            "has_error": False,
            "error_reason": "",
            "name": f"{role}{NODE_ID}",
            "hardware_infos": hardware,
            "system_info": {
                "system_version": version,
                "deploy_mode": "STANDALONE",
                "build_version": version,
                "build_time": STARTED,
                "used_go_version": f"Python {platform.python_version()}",
            },
            "created_time": STARTED,
            "updated_time": now,
            "type": role,
            "id": NODE_ID,
            **extra,
        },
    }


def memory_json(figures: MemoryFigures) -> dict[str, Any]:
    return asdict(figures)


def system_info_json(figures: MemoryFigures, version: str, data_dir: str) -> str:
    hardware = _hardware(data_dir)
    memory = memory_json(figures)
    proxy = _node("proxy", 1, version, hardware, {})
    querynode = _node("querynode", 2, version, hardware, {"memory": memory})
    proxy["connected"] = [{"connected_identifier": 2, "type": "forward", "target_type": "querynode"}]
    return json.dumps({"nodes_info": [proxy, querynode], "memory": memory})
