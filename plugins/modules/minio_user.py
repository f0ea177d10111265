#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: minio_user
short_description: Ensure a MinIO user whose policy allows one bucket only, and that bucket
version_added: 1.0.0
description:
  - Through MinIO's admin API (minio-py's C(MinioAdmin)), with the root credentials, ensures a canned
    policy that allows one bucket and its objects (listing, reading, writing, deleting, multipart uploads)
    and nothing else, a user with the given access and secret keys, and the policy attached to the user.
  - The components that read and write TiCI's files (TiCDC, TiCI, TiFlash) use this user, so the root
    credentials never leave the MinIO role.
  - MinIO never returns a secret key. Whether the user's secret is current is checked with one signed S3
    request as the user; when MinIO answers C(SignatureDoesNotMatch), the secret is set again.
  - With O(create_bucket), the bucket is made first, with the root credentials, when a HEAD request says it
    is missing. Nothing else about the bucket is read or set (C(amazon.aws.s3_bucket) does that, and reads
    every bucket property to do it).
  - Each step is taken only when what it sets differs; MinIO refuses to attach a policy twice.
  - Connection errors and HTTP 5xx answers are retried until O(timeout).
requirements:
  - minio (the Python package, 7.2 or later)
options:
  endpoint:
    description: URL of the MinIO server as the controller reaches it, like C(http://127.0.0.1:9000).
    type: str
    required: true
  root_user:
    description: MinIO's root user (C(MINIO_ROOT_USER)).
    type: str
    required: true
  root_password:
    description: MinIO's root password.
    type: str
    required: true
  access_key:
    description: The user's access key (its name), 3 characters or more.
    type: str
    required: true
  secret_key:
    description: The user's secret key, 8 characters or more.
    type: str
    required: true
  bucket:
    description: The one bucket the user may use.
    type: str
    required: true
  create_bucket:
    description: Make O(bucket) (in O(region)) when it does not exist.
    type: bool
    default: false
  policy_name:
    description: Name of the canned policy. Default C(<access_key>-<bucket>).
    type: str
  region:
    description: Region the requests are signed for.
    type: str
    default: us-east-1
  validate_certs:
    description: Whether an HTTPS endpoint's certificate is verified.
    type: bool
    default: true
  ca_cert:
    description: PEM file with the CA that signs an HTTPS endpoint's certificate (default the system's).
    type: path
  timeout:
    description: Seconds the module may take, retries included.
    type: float
    default: 60
extends_documentation_fragment:
  - tidbops.cluster.attributes
attributes:
  check_mode:
    support: full
    details: >-
      Reads the bucket (with O(create_bucket)), the policy and the user, checks the secret with one S3 request, and
      reports the steps it would take.
  diff_mode:
    support: full
    details: >-
      Shows whether the bucket exists (with O(create_bucket)), the policy document, whether the user exists and is
      enabled, and its policies; never a key.
  idempotent:
    support: full
seealso:
  - name: MinIO policy-based access control
    description: Canned policies and how they are attached to users.
    link: https://min.io/docs/minio/linux/administration/identity-access-management/policy-based-access-control.html
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: A user for TiCI that may use its bucket only
  tidbops.cluster.minio_user:
    endpoint: http://127.0.0.1:9000
    root_user: "{{ minio_root_user }}"
    root_password: "{{ minio_root_password }}"
    access_key: tici
    secret_key: "{{ tici_s3_secret_key }}"
    bucket: ticidefaultbucket
    create_bucket: true
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
steps:
  description: >-
    What was done (or would be, in check mode): C(bucket) (made), C(policy) (created or rewritten), C(user) (created),
    C(enable) (it was disabled), C(attach) (the policy attached), C(secret) (the secret key set again).
  returned: success
  type: list
  elements: str
  sample: [bucket, policy, user, attach]
policy_name:
  description: The canned policy's name.
  returned: success
  type: str
  sample: tici-ticidefaultbucket
'''

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tidbops.cluster.plugins.module_utils._minio import MinioUser, MinioUserError, bucket_policy, split_endpoint
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

try:
    import urllib3
    from minio import Minio
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()

TRANSIENT = ('Connection', 'timed out', 'Max retries', 'ServiceUnavailable', 'SlowDown', 'InternalError', 'XMinioServerNotInitialized', ' 50')


def _http(params, deadline):
    """One pool whose every request ends before the module's deadline; minio-py retries 5xx itself."""
    timeout = max(1.0, min(10.0, deadline.remaining()))
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        cert_reqs='CERT_REQUIRED' if params['validate_certs'] else 'CERT_NONE',
        ca_certs=params['ca_cert'],
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]))


def _client(params, deadline):
    host, secure = split_endpoint(params['endpoint'])
    http = _http(params, deadline)
    admin = MinioAdmin(endpoint=host, credentials=StaticProvider(params['root_user'], params['root_password']),
                       region=params['region'], secure=secure, http_client=http)
    as_user = Minio(host, access_key=params['access_key'], secret_key=params['secret_key'], region=params['region'],
                    secure=secure, http_client=http)

    root_s3 = Minio(host, access_key=params['root_user'], secret_key=params['root_password'], region=params['region'],
                    secure=secure, http_client=http) if params['create_bucket'] else None

    def s3_as_user():
        # One listing of at most one key: needs the signature and s3:ListBucket, reads nothing big.
        next(iter(as_user.list_objects(params['bucket'], prefix='', recursive=False)), None)
    return MinioUser(admin, s3_as_user, params['access_key'], params['secret_key'], params['bucket'],
                     params['policy_name'] or '%s-%s' % (params['access_key'], params['bucket']), root_s3=root_s3)


def _with_retries(deadline, action):
    """Run ``action`` until it succeeds, fails for a reason that is not transient, or time is up."""
    while True:
        try:
            return action()
        except MinioUserError as exc:
            if not any(word in str(exc) for word in TRANSIENT) or not deadline.pause():
                raise


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    endpoint=dict(type='str', required=True),
    root_user=dict(type='str', required=True),
    root_password=dict(type='str', required=True, no_log=True),
    access_key=dict(type='str', required=True, no_log=False),
    secret_key=dict(type='str', required=True, no_log=True),
    bucket=dict(type='str', required=True),
    create_bucket=dict(type='bool', default=False),
    policy_name=dict(type='str'),
    region=dict(type='str', default='us-east-1'),
    validate_certs=dict(type='bool', default=True),
    ca_cert=dict(type='path'),
    timeout=dict(type='float', default=60),
)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('minio'), exception=IMPORT_ERROR)
    params = module.params
    if len(params['access_key']) < 3 or len(params['secret_key']) < 8:
        module.fail_json(msg='minio_user: access_key must have 3 characters or more and secret_key 8 or more (MinIO refuses shorter ones)')
    if params['access_key'] == params['root_user']:
        module.fail_json(msg='minio_user: access_key must differ from root_user: the user exists to keep the root credentials out')
    deadline = Deadline(params['timeout'], 0.5)
    try:
        user = _client(params, deadline)
    except ValueError as exc:
        module.fail_json(msg='minio_user: %s' % exc)

    try:
        before = _with_retries(deadline, user.read)
        steps = user.plan(before)
        if module.check_mode:
            # A missing bucket answers the signed request NoSuchBucket: the secret cannot be checked before it exists.
            if before['user'] is not None and not {'user', 'bucket'} & set(steps) and not _with_retries(deadline, user.secret_is_current):
                steps.append('secret')
        else:
            # After a transient error, the state is read again: a step that went through is not repeated.
            taken = _with_retries(deadline, lambda: user.apply(user.plan(user.read())))
            steps = steps + [step for step in taken if step not in steps]
    except MinioUserError as exc:
        module.fail_json(msg='minio_user: %s' % exc)

    result = dict(changed=bool(steps), steps=steps, policy_name=user.policy_name)
    if module._diff:
        result['diff'] = dict(
            before={'bucket_exists': before['bucket'], 'policy': before['policy'], 'user_exists': before['user'] is not None,
                    'enabled': (before['user'] or {}).get('status') == 'enabled', 'policies': before['policies'],
                    'secret_key': 'stale' if 'secret' in steps else ('current' if before['user'] is not None else 'none')},
            after={'bucket_exists': True if params['create_bucket'] else before['bucket'], 'policy': bucket_policy(params['bucket']),
                   'user_exists': True, 'enabled': True, 'policies': sorted(set(before['policies']) | set([user.policy_name])), 'secret_key': 'current'},
        )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
