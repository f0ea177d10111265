# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Full-text search end to end, through the MySQL protocol, as a DBA would check it.

The SQL is the one tidb-operator's TiCI example runs (release-1.x examples/tici/README.md, "Quick
verification (FTS)"; ../shared/reference/operations.md section 5): a table with a clustered primary key,
``ALTER TABLE ... ADD FULLTEXT INDEX ... WITH PARSER standard``, rows, then ``fts_match_word`` until they
are found. The rows reach the index through the whole TiCI path - TiCDC's changefeed writes them to S3,
TiCI's worker indexes them, TiFlash's reader serves the query - so a broken link shows as rows that never
come. On the deadline the links are looked at one by one and the broken ones named.

Cleanup drops the index before the table: DROP TABLE is not allowed on a table with a full-text index
(pingcap/docs full-text-search-index.md).
"""

from __future__ import annotations

import json
import secrets

from ansible_collections.tidbops.cluster.plugins.module_utils._http import join_url

INDEX = 'tidbops_smoke_ft'
# Rows: the first two carry the run's word, the third does not (a query that matches everything fails).
ROWS = (('1', 'tidbops full-text smoke test, first row: %s'), ('2', 'second row %s of the smoke test'),
        ('3', 'a third row without the word'))


class SmokeError(Exception):
    """The check failed; the message says what was seen."""


def expected_ids():
    return sorted(row_id for row_id, text in ROWS if '%s' in text)


def statements(database, table, word):
    """(setup statements, query, cleanup statements)."""
    name = '`%s`.`%s`' % (database, table)
    values = ', '.join("('%s', '%s')" % (row_id, text.replace('%s', word)) for row_id, text in ROWS)
    setup = ['CREATE DATABASE IF NOT EXISTS `%s`' % database,
             'CREATE TABLE %s (id VARCHAR(10), body TEXT, PRIMARY KEY (id) CLUSTERED)' % name,
             'ALTER TABLE %s ADD FULLTEXT INDEX %s (body) WITH PARSER standard' % (name, INDEX),
             'INSERT INTO %s (id, body) VALUES %s' % (name, values)]
    query = "SELECT id FROM %s WHERE fts_match_word('%s', body)" % (name, word)
    cleanup = ['ALTER TABLE %s DROP INDEX %s' % (name, INDEX), 'DROP TABLE %s' % name, 'DROP DATABASE `%s`' % database]
    return setup, query, cleanup


def new_word():
    """A word no earlier run left in the index: letters and digits only, so the standard parser keeps it whole."""
    return 'tidbops%s' % secrets.token_hex(6)


# ---- the links, as pure readers of what each component answers ------------------------------

def changefeed_problem(changefeed_id, response):
    """TiCDC's ``GET /api/v2/changefeeds/{id}``: None when it replicates, else what is wrong."""
    if response.status is None:
        return 'TiCDC does not answer (%s)' % response.describe()
    if response.status == 200 and isinstance(response.json, dict):
        state = response.json.get('state')
        if state == 'normal':
            return None
        error = response.json.get('error') or {}
        detail = ': %s' % error.get('message') if isinstance(error, dict) and error.get('message') else ''
        return 'changefeed %s is %s, not normal%s' % (changefeed_id, state, detail)
    return 'changefeed %s: %s' % (changefeed_id, response.describe())


def worker_problem(url, response):
    """A TiCI worker's ``GET /status``: None when it answers 200."""
    if response.status == 200:
        return None
    return 'TiCI worker %s does not answer: %s' % (url, response.describe())


def tiflash_problem(response):
    """PD's ``GET /pd/api/v1/stores``: None when a TiFlash store (engine label tiflash) is Up."""
    if response.status != 200 or not isinstance(response.json, dict):
        return 'PD does not list the stores: %s' % response.describe()
    flash = [store.get('store') or {} for store in response.json.get('stores') or []
             if any(label.get('key') == 'engine' and label.get('value') == 'tiflash'
                    for label in (store.get('store') or {}).get('labels') or [])]
    if any(store.get('state_name') == 'Up' for store in flash):
        return None
    if not flash:
        return 'no TiFlash store is registered in PD: the full-text reader is missing'
    return 'no TiFlash store is Up in PD (%s): the full-text reader is missing' % ', '.join(
        '%s %s' % (store.get('address'), store.get('state_name')) for store in flash)


def diagnose(client, links):
    """Look at each link of the TiCI path; the problems found, in path order."""
    problems = []
    feed = links.get('changefeed') or {}
    if feed.get('endpoints') and feed.get('id'):
        problem = None
        for endpoint in feed['endpoints']:
            problem = changefeed_problem(feed['id'], client.get(join_url(endpoint, '/api/v2/changefeeds/%s' % feed['id']), timeout=5))
            if problem is None or not problem.startswith('TiCDC does not answer'):
                break
        if problem:
            problems.append(problem)
    for endpoint in links.get('tici_worker_endpoints') or []:
        problem = worker_problem(endpoint, client.get(join_url(endpoint, '/status'), timeout=5))
        if problem:
            problems.append(problem)
    if links.get('pd_endpoint'):
        problem = tiflash_problem(client.get(join_url(links['pd_endpoint'], '/pd/api/v1/stores'), timeout=5))
        if problem:
            problems.append(problem)
    return problems


class Smoke:
    """One run: set up, poll under the deadline, clean up, and on failure name the broken links."""

    def __init__(self, connect, client, deadline, database, table, links):
        self.connect = connect  # () -> a DB-API connection (PyMySQL), autocommit on
        self.client = client
        self.deadline = deadline
        self.database = database
        self.table = table
        self.links = links
        self.observations = []

    def _run(self, cursor, sql):
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []

    def run(self):
        word = new_word()
        setup, query, cleanup = statements(self.database, self.table, word)
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                self._drop_leftovers(cursor, cleanup)
                for sql in setup:
                    self._run(cursor, sql)
            try:
                found = self._poll(connection, query)
            finally:
                with connection.cursor() as cursor:
                    for sql in cleanup:
                        self._run(cursor, sql)
        finally:
            connection.close()
        return {'word': word, 'found': found, 'polls': len(self.observations), 'elapsed': round(self.deadline.elapsed(), 3)}

    def _drop_leftovers(self, cursor, cleanup):
        """A run cut short leaves its table: drop it the same way (each step may have nothing to do)."""
        for sql in cleanup:
            try:
                self._run(cursor, sql)
            except Exception:  # pylint: disable=broad-exception-caught  # nothing left to drop
                pass

    def _query(self, connection, query):
        """The IDs found, or the error text of a query that failed (TiDB restarting, a lost connection)."""
        try:
            with connection.cursor() as cursor:
                return sorted(str(row[0]) for row in self._run(cursor, query))
        except Exception as exc:  # pylint: disable=broad-exception-caught  # retried until the deadline
            if hasattr(connection, 'ping'):
                try:
                    connection.ping(reconnect=True)
                except Exception:  # pylint: disable=broad-exception-caught  # the next poll tries again
                    pass
            return 'failed: %s' % exc

    def _poll(self, connection, query):
        wanted = expected_ids()
        while True:
            found = self._query(connection, query)
            self.observations.append(found)
            if found == wanted:
                return found
            if not self.deadline.pause():
                problems = diagnose(self.client, self.links)
                last = ('found %s' % json.dumps(found)) if isinstance(found, list) else found
                raise SmokeError('full-text search did not find the rows within %gs: the last query %s, expected ids %s. %s'
                                 % (self.deadline.timeout, last, json.dumps(wanted),
                                    ('Broken: %s.' % '; '.join(problems)) if problems else
                                    'Every link answered (changefeed normal, TiCI worker up, TiFlash Up): TiCI did not index the '
                                    'rows in time.'))
