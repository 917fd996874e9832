"""A pytest plugin for the benchmark only: records, per criterion, the SQL it sent.

Loaded with `-p bench.sqlcapture`; writes JSON lines to $POSTDEPLOY_SQL_CAPTURE
({"test": name, "sql": statement with its parameters inlined}).
"""

from __future__ import annotations

import json
import os

import psycopg
import pytest

_current = {"test": ""}
_path = os.environ.get("POSTDEPLOY_SQL_CAPTURE", "")
_original = psycopg.Cursor.execute


def _execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
    if _path and _current["test"]:
        try:
            text = psycopg.ClientCursor(self.connection).mogrify(query, params)
        except Exception:  # noqa: BLE001 - recording must never break a run
            text = ""
        if text:
            with open(_path, "a", encoding="utf-8") as out:
                out.write(json.dumps({"test": _current["test"], "sql": text}) + "\n")
    return _original(self, query, params, **kwargs)


psycopg.Cursor.execute = _execute  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["test"] = item.name


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _current["test"] = item.name
