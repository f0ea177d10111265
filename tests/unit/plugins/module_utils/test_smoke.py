# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The smoke test's logic without a cluster: its SQL, retries of a failed query under the one deadline,
cleanup in every case (the index before the table), and what it says of each link."""

from __future__ import annotations

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils import _smoke
from ansible_collections.tidbops.cluster.plugins.module_utils._http import Response
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline


class FakeConnection:
    """A DB-API connection whose search query answers from ``answers`` (an exception is raised)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.executed = []
        self.pings = 0

    def cursor(self):
        return FakeCursor(self)

    def ping(self, reconnect=False):
        self.pings += 1

    def close(self):
        self.executed.append('CLOSE')


class FakeCursor:
    def __init__(self, connection):
        self.connection = connection
        self.description = None
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql):
        self.connection.executed.append(sql)
        self.description = None
        if sql.startswith('SELECT'):
            answer = self.connection.answers.pop(0) if len(self.connection.answers) > 1 else self.connection.answers[0]
            if isinstance(answer, Exception):
                raise answer
            self.description, self.rows = [('id',)], [(row_id,) for row_id in answer]

    def fetchall(self):
        return self.rows


def run(answers, timeout=5.0):
    connection = FakeConnection(answers)
    smoke = _smoke.Smoke(lambda: connection, None, Deadline(timeout, 0.01, 0.02), 'db', 't', {})
    return smoke, connection


def test_the_sql_drops_the_index_before_the_table():
    setup, query, cleanup = _smoke.statements('db', 't', 'tidbopsabc')
    assert setup[2] == 'ALTER TABLE `db`.`t` ADD FULLTEXT INDEX tidbops_smoke_ft (body) WITH PARSER standard'
    assert "('1', 'tidbops full-text smoke test, first row: tidbopsabc')" in setup[3] and "('3', 'a third row without the word')" in setup[3]
    assert query == "SELECT id FROM `db`.`t` WHERE fts_match_word('tidbopsabc', body)"
    assert cleanup == ['ALTER TABLE `db`.`t` DROP INDEX tidbops_smoke_ft', 'DROP TABLE `db`.`t`', 'DROP DATABASE `db`']
    assert _smoke.expected_ids() == ['1', '2']
    assert _smoke.new_word() != _smoke.new_word() and _smoke.new_word().isalnum()


def test_a_failed_query_is_retried_and_everything_is_cleaned_up():
    smoke, connection = run([ConnectionError('Lost connection to MySQL server'), [], ['1', '2']])
    result = smoke.run()
    assert result['found'] == ['1', '2'] and result['polls'] == 3
    assert smoke.observations == ['failed: Lost connection to MySQL server', [], ['1', '2']] and connection.pings == 1
    assert connection.executed[-4:] == ['ALTER TABLE `db`.`t` DROP INDEX tidbops_smoke_ft', 'DROP TABLE `db`.`t`', 'DROP DATABASE `db`', 'CLOSE']


def test_the_deadline_fails_with_the_last_answer_and_still_cleans_up():
    smoke, connection = run([['1']], timeout=0.1)
    with pytest.raises(_smoke.SmokeError, match=r'within 0.1s: the last query found \["1"\], expected ids \["1", "2"\]\. Every link answered'):
        smoke.run()
    assert connection.executed[-2:] == ['DROP DATABASE `db`', 'CLOSE']


def test_each_link_is_named_when_broken():
    def answer(status, body=''):
        return Response('GET', 'http://x', status, body)
    assert _smoke.changefeed_problem('tici', answer(200, '{"state": "normal"}')) is None
    assert _smoke.changefeed_problem('tici', answer(200, '{"state": "failed", "error": {"message": "sink down"}}')) == \
        'changefeed tici is failed, not normal: sink down'
    assert _smoke.changefeed_problem('tici', Response('GET', 'http://x', error='refused', error_kind='refused')).startswith('TiCDC does not answer')
    assert _smoke.worker_problem('http://w:8511', answer(200)) is None
    assert 'TiCI worker http://w:8511 does not answer' in _smoke.worker_problem('http://w:8511', answer(503, 'busy'))
    up = '{"stores": [{"store": {"address": "f:3930", "state_name": "Up", "labels": [{"key": "engine", "value": "tiflash"}]}}]}'
    assert _smoke.tiflash_problem(answer(200, up)) is None
    assert _smoke.tiflash_problem(answer(200, up.replace('"Up"', '"Disconnected"'))) == \
        'no TiFlash store is Up in PD (f:3930 Disconnected): the full-text reader is missing'
    assert _smoke.tiflash_problem(answer(200, '{"stores": []}')) == 'no TiFlash store is registered in PD: the full-text reader is missing'
