"""Serve settings: sizes as users write them, and a TOML file that takes every serve flag."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from sheafdb.cli import add_serve_flags, build_parser, with_config_file
from sheafdb.settings import SettingsError, check_cluster_flags, parse_size, parse_workers, read_config_file


def test_sizes_in_binary_and_decimal_units_bytes_and_shares_of_ram() -> None:
    assert parse_size("8GiB") == 8 * 1024**3
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("2GB") == 2 * 1000**3
    assert parse_size("1000000") == 1_000_000
    assert parse_size("1.5 KiB") == 1536
    assert parse_size("60%", total_bytes=1000) == 600
    for bad in ("lots", "8 parsecs", "0", "0%", "150%", "-1GiB"):
        with pytest.raises(SettingsError):
            parse_size(bad)


def _defaults() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    return {a.dest: a.default for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_serve_flag_is_a_setting_of_the_config_file(tmp_path: Path) -> None:
    samples = {bool: "true", int: "19531", float: "2.5", str: '"x"'}
    lines = []
    for dest, default in _defaults().items():
        if dest == "config":
            continue
        kind = type(default) if default is not None else str
        value = '"/tmp/d"' if isinstance(default, Path) else samples.get(kind, '"8GiB"')
        lines.append(f"{dest.replace('_', '-')} = {value}")
    config = tmp_path / "sheafdb.toml"
    config.write_text("\n".join(lines))
    settings = read_config_file(config, _defaults())
    assert set(settings) == set(_defaults()) - {"config"}


def test_flags_on_the_command_line_win_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "sheafdb.toml"
    config.write_text('memory-budget = "1GiB"\nport = 19999\nauth = true\n')
    argv = ["serve", "--config", str(config), "--port", "20000"]
    args = with_config_file(build_parser().parse_args(argv), argv)
    assert (args.memory_budget, args.port, args.auth) == ("1GiB", 20000, True)


def test_a_wrong_setting_is_named(tmp_path: Path) -> None:
    config = tmp_path / "sheafdb.toml"
    config.write_text("memory-budgett = 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'memory-budgett'"):
        read_config_file(config, _defaults())
    config.write_text("port = 'x'\n")
    with pytest.raises(SettingsError, match="'port' .* must be an integer"):
        read_config_file(config, _defaults())


def test_workers_is_a_number_or_auto_on_the_command_line_and_in_the_file(tmp_path: Path) -> None:
    assert parse_workers("1") == 1
    assert parse_workers("auto") == len(os.sched_getaffinity(0))
    for bad in ("0", "-2", "many", "1.5"):
        with pytest.raises(SettingsError, match="--workers"):
            parse_workers(bad)
    config = tmp_path / "sheafdb.toml"
    config.write_text("workers = 2\n")  # a TOML number is taken as written
    argv = ["serve", "--config", str(config)]
    assert parse_workers(with_config_file(build_parser().parse_args(argv), argv).workers) == 2
    config.write_text('workers = "auto"\n')
    assert with_config_file(build_parser().parse_args(argv), argv).workers == "auto"
    assert build_parser().parse_args(["serve"]).workers == "1"  # the default: one process, as before


def test_object_cache_size_is_a_size_on_the_command_line_and_in_the_file(tmp_path: Path) -> None:
    from sheafdb.cli import serve

    assert build_parser().parse_args(["serve"]).object_cache_size is None  # unbounded
    config = tmp_path / "sheafdb.toml"
    config.write_text('object-cache-size = "20GiB"\n')
    argv = ["serve", "--config", str(config)]
    args = with_config_file(build_parser().parse_args(argv), argv)
    assert parse_size(args.object_cache_size) == 20 * 1024**3
    argv = ["serve", "--data-dir", str(tmp_path / "d"), "--object-cache-size", "lots"]
    assert serve(build_parser().parse_args(argv), argv) == 2  # refused before starting


@pytest.mark.parametrize(
    ("cluster", "role", "catalog", "objects", "workers", "refusal"),
    [
        (None, "writer", None, None, 1, "--role writer needs --cluster"),
        (None, "shard-writer", None, None, 1, "--role shard-writer needs --cluster"),
        ("ray://h:10001", "shard-writer", None, "s3://b/p", 1, "needs --catalog postgresql"),
        ("ray://h:10001", "leader", "postgresql://h/db", "s3://b/p", 1, "proxy, writer or shard-writer"),
        ("ray://head", "proxy", "postgresql://h/db", "s3://b/p", 1, "ray://HOST:PORT"),
        ("ray://h:10001", "proxy", None, "s3://b/p", 1, "needs --catalog postgresql"),
        ("ray://h:10001", "writer", "postgresql://h/db", None, 1, "needs --objects s3"),
        ("ray://h:10001", "proxy", "postgresql://h/db", "s3://b/p", 2, "--workers is for one machine"),
    ],
)
def test_cluster_flags_are_checked(cluster, role, catalog, objects, workers, refusal) -> None:
    with pytest.raises(SettingsError, match=re.escape(refusal)):
        check_cluster_flags(cluster, role, catalog, objects, workers)


def test_cluster_flags_accepted() -> None:
    check_cluster_flags(None, "proxy", None, None, 4)
    check_cluster_flags("ray://head:10001", "writer", "postgresql://u@h:5432/db", "s3://bucket/prefix", 1)
    check_cluster_flags(
        "ray://head:10001", "shard-writer", "postgresql://u@h:5432/db", "s3://bucket/prefix", 1
    )
    check_cluster_flags("127.0.0.1:6379", "proxy", "postgresql://u@h:5432/db", "s3://bucket/prefix", 1)


def test_lease_ttl_is_seconds_on_the_command_line_and_in_the_file(tmp_path: Path) -> None:
    from sheafdb.cli import serve

    assert build_parser().parse_args(["serve"]).lease_ttl == 5.0
    config = tmp_path / "sheafdb.toml"
    config.write_text("lease-ttl = 2\n")  # a TOML integer is a number of seconds too
    argv = ["serve", "--config", str(config)]
    assert with_config_file(build_parser().parse_args(argv), argv).lease_ttl == 2.0
    config.write_text('lease-ttl = "soon"\n')
    with pytest.raises(SettingsError, match="'lease-ttl' .* must be a number"):
        with_config_file(build_parser().parse_args(argv), argv)
    argv = ["serve", "--data-dir", str(tmp_path / "d"), "--lease-ttl", "0"]
    assert serve(build_parser().parse_args(argv), argv) == 2  # refused before starting
