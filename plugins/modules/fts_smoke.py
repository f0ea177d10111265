#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: fts_smoke
short_description: Check full-text search end to end through TiDB's MySQL protocol
version_added: 1.0.0
description:
  - Creates a scratch database and table, adds a full-text index (C(ALTER TABLE ... ADD FULLTEXT INDEX ... WITH PARSER
    standard)), inserts rows carrying a word made for this run, and queries C(fts_match_word) until exactly those rows
    are found - the SQL of tidb-operator's TiCI example. The rows reach the index through the whole TiCI path (TiCDC's
    changefeed to S3, TiCI's worker, TiFlash's reader), so any broken link shows.
  - One deadline (O(timeout)) covers the polling. When it passes, each link given in O(links) is looked at - the
    changefeed's state in TiCDC, every TiCI worker's C(/status), a TiFlash store C(Up) in PD - and the failure names
    the broken ones, with the last query's answer.
  - It always cleans up, the index before the table (TiDB refuses C(DROP TABLE) on a table with a full-text index), and
    first drops what a run cut short left behind. It leaves nothing, so it reports no change.
  - Logs in with PyMySQL, which must be installed where the module runs.
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  login_host:
    description: A TiDB's MySQL host.
    type: str
    required: true
  login_port:
    description: Its MySQL port.
    type: int
    default: 4000
  login_user:
    description: An account that may create and drop O(database).
    type: str
    default: root
  login_password:
    description: Its password.
    type: str
    default: ''
  database:
    description: The scratch database, created and dropped by the module. Use a name nothing else uses.
    type: str
    default: tidbops_smoke
  table:
    description: The scratch table in O(database).
    type: str
    default: fts_smoke
  timeout:
    description: Seconds to wait until the rows are found.
    type: float
    default: 120
  interval:
    description: Seconds between two queries at first; the pause grows up to 5 s.
    type: float
    default: 0.5
  links:
    description: Where to look when the rows are not found in time (the connection options apply to these HTTP calls).
    type: dict
    default: {}
    suboptions:
      changefeed:
        description: The TiCI changefeed, C({endpoints, id}) - TiCDC API URLs and the changefeed ID.
        type: dict
      tici_worker_endpoints:
        description: TiCI workers' status URLs.
        type: list
        elements: str
      pd_endpoint:
        description: A PD client URL, to find an Up TiFlash store.
        type: str
attributes:
  check_mode:
    support: full
    details: Runs nothing - every statement would write - and reports no change.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Each run leaves the cluster as it found it.
seealso:
  - module: tidbops.cluster.ticdc_changefeed
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Full-text search works end to end
  tidbops.cluster.fts_smoke:
    login_host: 10.0.1.14
    login_password: "{{ tidb_root_password }}"
    links:
      changefeed: {endpoints: [http://10.0.1.20:8300], id: tici}
      tici_worker_endpoints: [http://10.0.1.23:8511]
      pd_endpoint: http://10.0.1.11:2379
'''

RETURN = r'''
word:
  description: The word this run's rows carried.
  returned: success, not in check mode
  type: str
  sample: tidbops5f1c2a9e0b7d
found:
  description: The IDs the last query found.
  returned: success, not in check mode
  type: list
  elements: str
  sample: ["1", "2"]
polls:
  description: How many times the query ran.
  returned: success, not in check mode
  type: int
elapsed:
  description: Seconds the check took until the rows were found, setup included.
  returned: success, not in check mode
  type: float
'''

import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils._smoke import Smoke, SmokeError
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

try:
    import pymysql
except ImportError:
    pymysql = None

NAME = re.compile(r'^\w{1,64}$')


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    login_host=dict(type='str', required=True),
    login_port=dict(type='int', default=4000),
    login_user=dict(type='str', default='root'),
    login_password=dict(type='str', default='', no_log=True),
    database=dict(type='str', default='tidbops_smoke'),
    table=dict(type='str', default='fts_smoke'),
    timeout=dict(type='float', default=120),
    interval=dict(type='float', default=0.5),
    links=dict(type='dict', default={}, options=dict(
        changefeed=dict(type='dict'),
        tici_worker_endpoints=dict(type='list', elements='str'),
        pd_endpoint=dict(type='str'),
    )),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    for option in ('database', 'table'):
        if not NAME.match(params[option]):
            module.fail_json(msg='fts_smoke: %s: expected a plain name (letters, digits, _), got %r' % (option, params[option]))
    if params['timeout'] <= 0 or params['interval'] <= 0:
        module.fail_json(msg='fts_smoke: timeout and interval: expected seconds > 0')
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg='check mode: no statement runs')
    if pymysql is None:
        module.fail_json(msg=missing_required_lib('PyMySQL'))

    def connect():
        return pymysql.connect(host=params['login_host'], port=params['login_port'], user=params['login_user'],
                               password=params['login_password'], autocommit=True, connect_timeout=10)

    smoke = Smoke(connect, HttpClient(make_transport(module)), Deadline(params['timeout'], params['interval'], 5.0),
                  params['database'], params['table'], params['links'] or {})
    try:
        result = smoke.run()
    except SmokeError as exc:
        module.fail_json(msg='fts_smoke: %s' % exc, polls=len(smoke.observations))
    except pymysql.MySQLError as exc:
        module.fail_json(msg='fts_smoke: TiDB %s:%s answered %s' % (params['login_host'], params['login_port'], exc))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
