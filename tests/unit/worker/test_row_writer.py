"""RowWriter over a real Faust RocksDB table: what it writes inside a batch message is what it
reads back, before and after the flush writes it to the store, in the partition of the message
being applied and outside any message; a missing row is None."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from streams.errors import InvariantError
from streams.settings import load_settings
from streams.worker.app import ROCKSDB_OPTIONS, _faust_app
from streams.worker.changelog import ChangelogWriter, RowWriter


@pytest.fixture
def table(tmp_path: Path) -> faust.Table:
    settings = load_settings({"broker": "kafka://127.0.0.1:1", "data_dir": str(tmp_path)}, environ={})
    app = _faust_app(settings)
    return app.Table("rows", partitions=4, key_type=bytes, value_type=bytes, options=dict(ROCKSDB_OPTIONS))


def test_rows_written_in_a_message_read_back_and_reach_the_changelog(table: faust.Table) -> None:
    changelog = ChangelogWriter(table.app)
    rows = RowWriter(table, changelog)
    changelog.partition = 2  # as the state stage sets it while it applies a message of partition 2
    assert rows.get("a\x1fd-1") is None
    rows.set("a\x1fd-1", b'[[0,5,["e1"]]]')
    rows.set("a\x1fd-2", b"{}")
    rows.set("a\x1fd-1", b'[[0,5,["e1"]],[0,9,["e2"]]]')  # written twice: the last value counts
    assert rows.get("a\x1fd-1") == b'[[0,5,["e1"]],[0,9,["e2"]]]'
    assert rows.get("a\x1fd-2") == b"{}"
    assert rows.get("a\x1fd-3") is None
    assert rows.get_many(["a\x1fd-3", "a\x1fd-1", "a\x1fd-2"]) == [None, b'[[0,5,["e1"]],[0,9,["e2"]]]', b"{}"]
    assert changelog.pending == {(table, 2): {b"a\x1fd-1": b'[[0,5,["e1"]],[0,9,["e2"]]]', b"a\x1fd-2": b"{}"}}

    # In the store once the message's rows are flushed (one write batch per table partition),
    # read back through Faust's own path too, and outside any message (the explain and
    # snapshot readers), where the store looks the key up across its partitions.
    assert table.get(b"a\x1fd-1") is None
    ChangelogWriter._write_stores(changelog.pending)
    changelog.pending.clear()
    assert table.get(b"a\x1fd-1") == rows.get("a\x1fd-1")
    assert rows.get("a\x1fd-1") == b'[[0,5,["e1"]],[0,9,["e2"]]]'
    # Nothing pending: one multi-get in the message partition's store.
    assert rows.get_many(["a\x1fd-1", "a\x1fd-3", "a\x1fd-2"]) == [b'[[0,5,["e1"]],[0,9,["e2"]]]', None, b"{}"]
    assert rows.get_many([]) == []
    # A reader outside the agent (snapshots, the dossier endpoint) while the partition is still
    # that of the last message applied, here another one: the row of partition 2 is found.
    changelog.partition = 0
    assert rows.get("a\x1fd-1") == b'[[0,5,["e1"]],[0,9,["e2"]]]'
    changelog.partition = None
    assert rows.get("a\x1fd-1") == b'[[0,5,["e1"]],[0,9,["e2"]]]'
    assert rows.get("a\x1fd-9") is None
    assert rows.get_stored("a\x1fd-1") == b'[[0,5,["e1"]],[0,9,["e2"]]]'


def test_a_row_is_not_written_outside_a_message(table: faust.Table) -> None:
    with pytest.raises(InvariantError):
        RowWriter(table, ChangelogWriter(table.app)).set("k", b"v")
