"""File resources (Milvus 3.0) against the real server: Add / List / Remove, analyzers that
read a registered word list (RunAnalyzer and TEXT_MATCH), and the errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from tests.e2e.conftest import ROOT_TOKEN, free_port, start_server, stop_server, wait_ready


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resource-files")
    (root / "dicts").mkdir()
    (root / "dicts" / "stop.txt").write_text("the\nof\n\nand\n")
    (root / "dicts" / "synonyms.txt").write_text("quick, fast\n")
    (root / "dicts" / "compound.txt").write_text("dampf\nschiff\n")
    (root / "dicts" / "jieba.txt").write_text("向量数据库 10 n\n")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (root / "dicts" / "folder").mkdir()
    return root


@pytest.fixture(scope="module")
def fr_client(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    root = tmp_path_factory.mktemp("sheafdb-file-resources")
    port = free_port()
    log_path = root / "server.log"
    process = start_server(root / "data", port, log_path, extra=("--import-root", str(files)))
    wait_ready(process, log_path)
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", token=ROOT_TOKEN)
    yield client
    client.close()
    stop_server(process)


def stop_params(resource: str = "stops", file_name: str = "stop.txt") -> dict[str, object]:
    ref = {"type": "remote", "resource_name": resource, "file_name": file_name}
    return {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words_file": ref}]}


def words(client: MilvusClient, text: str, params: dict[str, object]) -> list[str]:
    return list(client.run_analyzer(text, analyzer_params=params).tokens)


def error_of(call: object) -> MilvusException:
    with pytest.raises(MilvusException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_add_list_and_analyze_with_a_stop_word_file(fr_client: MilvusClient) -> None:
    fr_client.add_file_resource("stops", "dicts/stop.txt")
    listed = {(r.name, r.path) for r in fr_client.list_file_resources()}
    assert ("stops", "dicts/stop.txt") in listed
    assert words(fr_client, "The history of Milvus and Rust", stop_params()) == ["history", "milvus", "rust"]
    # The same registration again changes nothing; the same name for another file is refused.
    fr_client.add_file_resource("stops", "dicts/stop.txt")
    clash = error_of(lambda: fr_client.add_file_resource("stops", "dicts/synonyms.txt"))
    assert clash.code == 1100 and "already exists" in clash.message


def test_synonym_and_decompounder_files(fr_client: MilvusClient) -> None:
    fr_client.add_file_resource("syn", "dicts/synonyms.txt")
    fr_client.add_file_resource("parts", "dicts/compound.txt")
    syn = {"type": "remote", "resource_name": "syn", "file_name": "synonyms.txt"}
    params = {"tokenizer": "standard", "filter": [{"type": "synonym", "synonyms_file": syn}]}
    assert sorted(words(fr_client, "quick", params)) == ["fast", "quick"]
    parts = {"type": "remote", "resource_name": "parts", "file_name": "compound.txt"}
    params = {"tokenizer": "standard", "filter": [{"type": "decompounder", "word_list_file": parts}]}
    assert words(fr_client, "dampfschiff", params) == ["dampf", "schiff"]


def test_jieba_extra_dict_file(fr_client: MilvusClient) -> None:
    fr_client.add_file_resource("jieba_words", "dicts/jieba.txt")
    extra = {"type": "remote", "resource_name": "jieba_words", "file_name": "jieba.txt"}
    plain = {"tokenizer": {"type": "jieba", "mode": "exact"}}
    with_dict = {"tokenizer": {"type": "jieba", "mode": "exact", "extra_dict_file": extra}}
    assert "向量数据库" not in words(fr_client, "向量数据库", plain)
    assert words(fr_client, "向量数据库", with_dict) == ["向量数据库"]


def test_add_checks_the_file(fr_client: MilvusClient) -> None:
    for path in ("dicts/missing.txt", "dicts/folder", "/etc/hostname", "../outside.txt", "latin1.txt"):
        error = error_of(lambda path=path: fr_client.add_file_resource(f"bad_{len(path)}", path))
        assert error.code == 1100, path
        assert "add file resource failed" in error.message
    assert error_of(lambda: fr_client.add_file_resource("", "dicts/stop.txt")).code == 1100
    names = {r.name for r in fr_client.list_file_resources()}
    assert not any(name.startswith("bad_") for name in names)


def test_unknown_resource_or_file_is_a_clear_1100(fr_client: MilvusClient) -> None:
    unknown = error_of(lambda: words(fr_client, "text", stop_params("nobody")))
    assert unknown.code == 1100 and "file resource nobody not found" in unknown.message
    fr_client.add_file_resource("stops", "dicts/stop.txt")
    wrong_file = error_of(lambda: words(fr_client, "text", stop_params("stops", "other.txt")))
    assert wrong_file.code == 1100 and "other.txt" in wrong_file.message
    local = {"tokenizer": "standard", "filter": [{"type": "stop", "stop_words_file": {"type": "local"}}]}
    assert error_of(lambda: words(fr_client, "text", local)).code == 1100


def test_text_match_and_remove_while_in_use(fr_client: MilvusClient) -> None:
    fr_client.add_file_resource("stops", "dicts/stop.txt")
    name = "file_resource_match"
    schema = fr_client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    schema.add_field(
        "text", DataType.VARCHAR, max_length=200, enable_analyzer=True, enable_match=True,
        analyzer_params=stop_params(),
    )  # fmt: skip
    index = fr_client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    fr_client.create_collection(name, schema=schema, index_params=index)
    rows = [
        {"id": 1, "vec": [0.0, 0.0], "text": "the art of search"},
        {"id": 2, "vec": [0.0, 1.0], "text": "milvus and vectors"},
        {"id": 3, "vec": [1.0, 0.0], "text": "search engines"},
    ]
    fr_client.insert(name, rows)
    fr_client.load_collection(name)

    def ids(expr: str) -> list[int]:
        found = fr_client.query(name, filter=expr, output_fields=["id"], consistency_level="Strong")
        return sorted(row["id"] for row in found)

    assert ids("TEXT_MATCH(text, 'the')") == []  # a stop word from the file: never indexed
    assert ids("TEXT_MATCH(text, 'of and')") == []
    assert ids("TEXT_MATCH(text, 'search')") == [1, 3]
    assert ids("TEXT_MATCH(text, 'the milvus')") == [2]

    in_use = error_of(lambda: fr_client.remove_file_resource("stops"))
    assert in_use.code == 1100 and "in use" in in_use.message
    fr_client.drop_collection(name)
    fr_client.remove_file_resource("stops")
    assert "stops" not in {r.name for r in fr_client.list_file_resources()}
    fr_client.remove_file_resource("stops")  # removing an unknown name is a no-op, as in Milvus
    missing = error_of(lambda: words(fr_client, "the text", stop_params()))
    assert missing.code == 1100 and "not found" in missing.message


def test_collection_naming_an_unknown_resource_is_refused(fr_client: MilvusClient) -> None:
    schema = fr_client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    schema.add_field(
        "text", DataType.VARCHAR, max_length=50, enable_analyzer=True, analyzer_params=stop_params("ghost")
    )
    error = error_of(lambda: fr_client.create_collection("file_resource_ghost", schema=schema))
    assert error.code == 1100 and "ghost" in error.message
    assert not fr_client.has_collection("file_resource_ghost")
