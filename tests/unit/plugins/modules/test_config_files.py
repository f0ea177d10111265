# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""config_files run as a module process would run it, against a real directory."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.tidbops.cluster.plugins.modules import config_files

SECRET = 'S3cr3t-Pa55w0rd-do-not-leak'
PD_TOML = '[replication]\nmax-replicas = 3\n'


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def args(path, **extra):
    base = dict(
        path=str(path),
        files=[dict(name='pd.toml', content=PD_TOML), dict(name='labels.json', content='{"zone": "z1"}')],
        secret_files=[dict(name='credentials.env', content='PASSWORD=%s\n' % SECRET)],
    )
    base.update(extra)
    return base


def test_creates_directory_and_files(tmp_path, run_module):
    conf = tmp_path / 'pd0' / 'conf'
    result = run_module(config_files, args(conf))
    assert result['changed'] is True and result['created_dir'] is True
    assert result['path'] == str(conf)
    assert result['changed_files'] == ['pd.toml', 'labels.json', 'credentials.env']
    assert (conf / 'pd.toml').read_text() == PD_TOML
    assert (conf / 'labels.json').read_text() == '{"zone": "z1"}'
    assert (conf / 'credentials.env').read_text() == 'PASSWORD=%s\n' % SECRET
    assert mode_of(conf) == 0o750 and mode_of(tmp_path / 'pd0') == 0o750
    assert mode_of(conf / 'pd.toml') == 0o644 and mode_of(conf / 'labels.json') == 0o644
    assert mode_of(conf / 'credentials.env') == 0o600
    assert sorted(os.listdir(conf)) == ['credentials.env', 'labels.json', 'pd.toml']  # no temporary file left


def test_second_run_changes_nothing(tmp_path, run_module):
    conf = tmp_path / 'conf'
    run_module(config_files, args(conf))
    before = dict((name, os.stat(conf / name).st_mtime_ns) for name in os.listdir(conf))
    again = run_module(config_files, args(conf), diff=True)
    assert again['changed'] is False and again['changed_files'] == [] and again['created_dir'] is False
    assert again['diff'] == []
    assert dict((name, os.stat(conf / name).st_mtime_ns) for name in os.listdir(conf)) == before


def test_content_change_rewrites_only_that_file(tmp_path, run_module):
    conf = tmp_path / 'conf'
    run_module(config_files, args(conf))
    (conf / 'unlisted.txt').write_text('keep me')
    inode = os.stat(conf / 'labels.json').st_ino
    files = [dict(name='pd.toml', content='[replication]\nmax-replicas = 5\n'), dict(name='labels.json', content='{"zone": "z1"}')]
    result = run_module(config_files, args(conf, files=files), diff=True)
    assert result['changed'] is True and result['changed_files'] == ['pd.toml']
    assert (conf / 'pd.toml').read_text() == '[replication]\nmax-replicas = 5\n'
    assert mode_of(conf / 'pd.toml') == 0o644
    assert os.stat(conf / 'labels.json').st_ino == inode
    assert (conf / 'unlisted.txt').read_text() == 'keep me'
    assert result['diff'] == [dict(before_header=str(conf / 'pd.toml'), after_header=str(conf / 'pd.toml'),
                                   before=PD_TOML, after='[replication]\nmax-replicas = 5\n')]


def test_mode_drift_is_repaired(tmp_path, run_module):
    conf = tmp_path / 'conf'
    run_module(config_files, args(conf))
    os.chmod(conf, 0o777)
    os.chmod(conf / 'pd.toml', 0o600)
    os.chmod(conf / 'credentials.env', 0o644)
    result = run_module(config_files, args(conf), diff=True)
    assert result['changed'] is True and result['changed_files'] == ['pd.toml', 'credentials.env']
    assert mode_of(conf) == 0o750
    assert mode_of(conf / 'pd.toml') == 0o644 and mode_of(conf / 'credentials.env') == 0o600
    assert (conf / 'pd.toml').read_text() == PD_TOML
    assert result['diff'] == [
        dict(before=dict(path=str(conf), mode='0777'), after=dict(path=str(conf), mode='0750')),
        dict(before=dict(path=str(conf / 'pd.toml'), mode='0600'), after=dict(path=str(conf / 'pd.toml'), mode='0644')),
        dict(before=dict(path=str(conf / 'credentials.env'), mode='0644'), after=dict(path=str(conf / 'credentials.env'), mode='0600')),
    ]
    assert run_module(config_files, args(conf))['changed'] is False


def test_directory_mode_option(tmp_path, run_module):
    conf = tmp_path / 'conf'
    assert run_module(config_files, dict(path=str(conf), mode='0700'))['changed'] is True
    assert mode_of(conf) == 0o700
    assert run_module(config_files, dict(path=str(conf), mode=0o700))['changed'] is False  # YAML 0700 arrives as an int
    assert run_module(config_files, dict(path=str(conf), mode='0755'))['changed'] is True
    assert mode_of(conf) == 0o755


def test_check_mode_writes_nothing(tmp_path, run_module):
    conf = tmp_path / 'conf'
    result = run_module(config_files, args(conf), check_mode=True, diff=True)
    assert result['changed'] is True and result['created_dir'] is True
    assert result['changed_files'] == ['pd.toml', 'labels.json', 'credentials.env']
    assert not conf.exists()
    assert result['diff'][0] == dict(before=dict(path=str(conf), state='absent'), after=dict(path=str(conf), state='directory', mode='0750'))
    assert result['diff'][1] == dict(before_header=str(conf / 'pd.toml'), after_header=str(conf / 'pd.toml'), before='', after=PD_TOML)

    run_module(config_files, args(conf))
    os.chmod(conf / 'labels.json', 0o666)
    changed = args(conf, secret_files=[dict(name='credentials.env', content='PASSWORD=other\n')])
    result = run_module(config_files, changed, check_mode=True)
    assert result['changed'] is True and result['created_dir'] is False
    assert result['changed_files'] == ['labels.json', 'credentials.env']
    assert mode_of(conf / 'labels.json') == 0o666
    assert (conf / 'credentials.env').read_text() == 'PASSWORD=%s\n' % SECRET


@pytest.mark.parametrize('check_mode, diff', [(False, False), (False, True), (True, False), (True, True)])
def test_secret_content_never_in_result(tmp_path, run_module, check_mode, diff):
    conf = tmp_path / 'conf'
    conf.mkdir()
    (conf / 'credentials.env').write_text('PASSWORD=old-%s\n' % SECRET)
    os.chmod(conf / 'credentials.env', 0o644)
    result = run_module(config_files, args(conf), check_mode=check_mode, diff=diff)
    assert result['changed'] is True and 'credentials.env' in result['changed_files']
    assert SECRET not in json.dumps(result)
    if diff:
        dest = str(conf / 'credentials.env')
        entries = [entry for entry in result['diff'] if entry.get('before_header') == dest]
        # The placeholder itself, not the content masked by Ansible's no_log.
        assert entries == [dict(before_header=dest, after_header=dest,
                                before='(secret file credentials.env: old content not shown)\n',
                                after='(secret file credentials.env: new content not shown)\n')]
    if check_mode:
        assert (conf / 'credentials.env').read_text() == 'PASSWORD=old-%s\n' % SECRET
        assert mode_of(conf / 'credentials.env') == 0o644
    else:
        assert (conf / 'credentials.env').read_text() == 'PASSWORD=%s\n' % SECRET
        assert mode_of(conf / 'credentials.env') == 0o600


def test_new_secret_file_diff_and_mode(tmp_path, run_module):
    conf = tmp_path / 'conf'
    result = run_module(config_files, dict(path=str(conf), secret_files=[dict(name='key.pem', content=SECRET)]), diff=True)
    assert SECRET not in json.dumps(result)
    assert result['diff'][1]['before'] == '' and result['diff'][1]['after'] == '(secret file key.pem: new content not shown)\n'
    assert mode_of(conf / 'key.pem') == 0o600 and (conf / 'key.pem').read_text() == SECRET


def test_umask_is_restored(tmp_path, run_module):
    previous = os.umask(0o022)
    try:
        run_module(config_files, args(tmp_path / 'conf'))
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(previous)


@pytest.mark.parametrize('option, name, expected', [
    ('files', 'a/b', "files[1].name: 'a/b' is not a plain file name"),
    ('files', '..', "files[1].name: '..' is not a plain file name"),
    ('secret_files', '.', "secret_files[0].name: '.' is not a plain file name"),
    ('secret_files', '', "secret_files[0].name: '' is not a plain file name"),
    ('secret_files', 'pd.toml', "secret_files[0].name: 'pd.toml' is listed twice (also files[0].name)"),
])
def test_bad_names_fail_before_writing(tmp_path, run_module, option, name, expected):
    conf = tmp_path / 'conf'
    entries = dict(files=[dict(name='pd.toml', content=PD_TOML)], secret_files=[])
    entries[option].append(dict(name=name, content=SECRET))
    result = run_module(config_files, dict(path=str(conf), **entries))
    assert result['failed'] is True
    assert result['msg'].startswith('config_files: ') and expected in result['msg']
    assert not conf.exists()


def test_duplicate_within_files(tmp_path, run_module):
    result = run_module(config_files, dict(path=str(tmp_path), files=[dict(name='a', content='1'), dict(name='a', content='2')]))
    assert result['failed'] is True and "files[1].name: 'a' is listed twice (also files[0].name)" in result['msg']
    assert not (tmp_path / 'a').exists()


def test_bad_mode_fails(tmp_path, run_module):
    result = run_module(config_files, dict(path=str(tmp_path / 'conf'), mode='u=rwx'))
    assert result['failed'] is True and 'mode: ' in result['msg'] and "'u=rwx'" in result['msg']
    assert not (tmp_path / 'conf').exists()


@pytest.mark.parametrize('check_mode', [False, True])
def test_path_is_a_file(tmp_path, run_module, check_mode):
    target = tmp_path / 'conf'
    target.write_text('a file')
    result = run_module(config_files, args(target), check_mode=check_mode)
    assert result['failed'] is True
    assert result['msg'] == 'config_files: path: %s exists and is not a directory' % target
    assert target.read_text() == 'a file'
    parent = run_module(config_files, args(target / 'sub'))
    assert parent['failed'] is True and 'path: %s/sub: %s exists and is not a directory' % (target, target) in parent['msg']


def test_listed_name_that_is_a_directory(tmp_path, run_module):
    (tmp_path / 'labels.json').mkdir()
    result = run_module(config_files, args(tmp_path))
    assert result['failed'] is True and 'files: %s exists and is not a regular file' % (tmp_path / 'labels.json') in result['msg']
    assert not (tmp_path / 'pd.toml').exists()  # planned first, so nothing was written


def test_invocation_masks_secret_content(tmp_path, run_module):
    result = run_module(config_files, args(tmp_path / 'conf'))
    secret_files = result['invocation']['module_args']['secret_files']
    assert secret_files[0]['name'] == 'credentials.env' and secret_files[0]['content'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert result['invocation']['module_args']['files'][0]['content'] == PD_TOML


# The directories option: the files of several instances in one run.

MINIO_ENV = 'MINIO_BROWSER=off\n'


def two_dirs(tmp_path, **second):
    """Two instances of one engine host: pd0 with plain files, minio0 with a secret file too."""
    minio = dict(path=str(tmp_path / 'minio0' / 'conf'), mode='0700',
                 files=[dict(name='minio.env', content=MINIO_ENV)],
                 secret_files=[dict(name='credentials.env', content='PASSWORD=%s\n' % SECRET)])
    minio.update(second)
    return dict(directories=[
        dict(path=str(tmp_path / 'pd0' / 'conf'), files=[dict(name='pd.toml', content=PD_TOML), dict(name='labels.json', content='{}')]),
        minio,
    ])


def test_directories_written_in_one_run(tmp_path, run_module):
    result = run_module(config_files, two_dirs(tmp_path))
    pd0, minio0 = tmp_path / 'pd0' / 'conf', tmp_path / 'minio0' / 'conf'
    assert result['changed'] is True
    assert result['directories'] == [
        dict(path=str(pd0), changed=True, changed_files=['pd.toml', 'labels.json'], created_dir=True),
        dict(path=str(minio0), changed=True, changed_files=['minio.env', 'credentials.env'], created_dir=True),
    ]
    assert 'path' not in result and 'changed_files' not in result and 'created_dir' not in result
    assert (pd0 / 'pd.toml').read_text() == PD_TOML and (pd0 / 'labels.json').read_text() == '{}'
    assert (minio0 / 'minio.env').read_text() == MINIO_ENV
    assert (minio0 / 'credentials.env').read_text() == 'PASSWORD=%s\n' % SECRET
    assert mode_of(pd0) == 0o750 and mode_of(tmp_path / 'pd0') == 0o750  # the default mode
    assert mode_of(minio0) == 0o700 and mode_of(tmp_path / 'minio0') == 0o700
    assert mode_of(pd0 / 'pd.toml') == 0o644 and mode_of(pd0 / 'labels.json') == 0o644
    assert mode_of(minio0 / 'minio.env') == 0o644 and mode_of(minio0 / 'credentials.env') == 0o600
    assert sorted(os.listdir(pd0)) == ['labels.json', 'pd.toml'] and sorted(os.listdir(minio0)) == ['credentials.env', 'minio.env']


def test_directories_second_run_changes_nothing(tmp_path, run_module):
    run_module(config_files, two_dirs(tmp_path))
    tree = dict((str(path), os.stat(path).st_mtime_ns) for path in tmp_path.rglob('*'))
    again = run_module(config_files, two_dirs(tmp_path), diff=True)
    assert again['changed'] is False and again['diff'] == []
    assert [(entry['changed'], entry['changed_files'], entry['created_dir']) for entry in again['directories']] == [(False, [], False)] * 2
    assert dict((str(path), os.stat(path).st_mtime_ns) for path in tmp_path.rglob('*')) == tree


def test_directories_only_the_drifted_one_changes(tmp_path, run_module):
    run_module(config_files, two_dirs(tmp_path))
    pd0, minio0 = tmp_path / 'pd0' / 'conf', tmp_path / 'minio0' / 'conf'
    (minio0 / 'minio.env').write_text('edited by hand\n')
    os.chmod(minio0 / 'credentials.env', 0o644)
    inode = os.stat(pd0 / 'pd.toml').st_ino
    result = run_module(config_files, two_dirs(tmp_path), diff=True)
    assert result['changed'] is True
    assert result['directories'] == [
        dict(path=str(pd0), changed=False, changed_files=[], created_dir=False),
        dict(path=str(minio0), changed=True, changed_files=['minio.env', 'credentials.env'], created_dir=False),
    ]
    assert result['diff'] == [
        dict(before_header=str(minio0 / 'minio.env'), after_header=str(minio0 / 'minio.env'), before='edited by hand\n', after=MINIO_ENV),
        dict(before=dict(path=str(minio0 / 'credentials.env'), mode='0644'), after=dict(path=str(minio0 / 'credentials.env'), mode='0600')),
    ]
    assert (minio0 / 'minio.env').read_text() == MINIO_ENV and mode_of(minio0 / 'credentials.env') == 0o600
    assert os.stat(pd0 / 'pd.toml').st_ino == inode
    assert run_module(config_files, two_dirs(tmp_path))['changed'] is False


@pytest.mark.parametrize('same', ['{0}', '{0}/', '{0}/./', '{0}/../conf', '{0}//'])
def test_directories_duplicate_paths_rejected(tmp_path, run_module, same):
    conf = str(tmp_path / 'conf')
    result = run_module(config_files, dict(directories=[
        dict(path=str(tmp_path / 'other'), files=[dict(name='a', content='1')]),
        dict(path=conf, files=[dict(name='a', content='1')]),
        dict(path=same.format(conf), files=[dict(name='b', content='2')]),
    ]))
    assert result['failed'] is True
    assert result['msg'] == "config_files: directories[2].path: %r is listed twice (also directories[1].path)" % same.format(conf)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('name, expected', [
    ('a/b', "directories[1].files[0].name: 'a/b' is not a plain file name"),
    ('..', "directories[1].files[0].name: '..' is not a plain file name"),
    ('minio.env', "directories[1].secret_files[0].name: 'minio.env' is listed twice (also directories[1].files[0].name)"),
])
def test_directories_bad_name_in_second_rejects_the_run(tmp_path, run_module, name, expected):
    params = two_dirs(tmp_path, files=[dict(name=name, content='x')], secret_files=[dict(name='minio.env', content=SECRET)])
    if name == 'minio.env':
        params['directories'][1]['files'] = [dict(name='minio.env', content=MINIO_ENV)]
    result = run_module(config_files, params)
    assert result['failed'] is True and result['msg'].startswith('config_files: ') and expected in result['msg']
    assert not (tmp_path / 'pd0').exists()  # the first directory was not written
    assert SECRET not in json.dumps(result)


def test_directories_same_name_in_two_directories_is_fine(tmp_path, run_module):
    result = run_module(config_files, dict(directories=[dict(path=str(tmp_path / 'a'), files=[dict(name='x', content='a')]),
                                                        dict(path=str(tmp_path / 'b'), files=[dict(name='x', content='b')])]))
    assert result['changed'] is True and (tmp_path / 'a' / 'x').read_text() == 'a' and (tmp_path / 'b' / 'x').read_text() == 'b'


def test_directories_all_errors_named_with_index(tmp_path, run_module):
    (tmp_path / 'file').write_text('a file')
    result = run_module(config_files, dict(directories=[
        dict(path=str(tmp_path / 'a'), mode='u=rwx'),
        dict(path=str(tmp_path / 'b'), files=[dict(name='', content='x')]),
    ]))
    assert result['failed'] is True
    assert result['msg'] == ("config_files: directories[0].mode: expected an octal mode like '0750', got 'u=rwx'; "
                             "directories[1].files[0].name: '' is not a plain file name (no '/', not empty, '.' or '..')")
    assert sorted(os.listdir(tmp_path)) == ['file']


@pytest.mark.parametrize('check_mode', [False, True])
def test_directories_path_not_a_directory_rejects_the_run(tmp_path, run_module, check_mode):
    (tmp_path / 'minio0').write_text('a file')
    result = run_module(config_files, two_dirs(tmp_path), check_mode=check_mode)
    assert result['failed'] is True
    assert result['msg'] == ('config_files: directories[1].path: %s: %s exists and is not a directory'
                             % (tmp_path / 'minio0' / 'conf', tmp_path / 'minio0'))
    assert not (tmp_path / 'pd0').exists() and (tmp_path / 'minio0').read_text() == 'a file'


def test_directories_listed_name_not_a_regular_file(tmp_path, run_module):
    (tmp_path / 'minio0' / 'conf' / 'credentials.env').mkdir(parents=True)
    result = run_module(config_files, two_dirs(tmp_path))
    assert result['failed'] is True
    assert result['msg'] == ('config_files: directories[1].secret_files: %s exists and is not a regular file'
                             % (tmp_path / 'minio0' / 'conf' / 'credentials.env'))
    assert not (tmp_path / 'pd0').exists()


def test_directories_path_inside_a_listed_file(tmp_path, run_module):
    result = run_module(config_files, dict(directories=[
        dict(path=str(tmp_path / 'a'), files=[dict(name='b', content='x')]),
        dict(path=str(tmp_path / 'a' / 'b' / 'c')),
    ]))
    assert result['failed'] is True
    assert result['msg'] == ('config_files: directories[1].path: %s: %s is also listed as a file (directories[0].files[0].name)'
                             % (tmp_path / 'a' / 'b' / 'c', tmp_path / 'a' / 'b'))
    assert os.listdir(tmp_path) == []


def test_directories_nested_in_an_earlier_one(tmp_path, run_module):
    params = dict(directories=[dict(path=str(tmp_path / 'a'), mode='0700', files=[dict(name='f', content='x')]),
                               dict(path=str(tmp_path / 'a' / 'b'), mode='0750', files=[dict(name='g', content='y')])])
    result = run_module(config_files, params)
    assert [entry['created_dir'] for entry in result['directories']] == [True, True]
    assert mode_of(tmp_path / 'a') == 0o700 and mode_of(tmp_path / 'a' / 'b') == 0o750
    assert sorted(os.listdir(tmp_path / 'a')) == ['b', 'f'] and (tmp_path / 'a' / 'b' / 'g').read_text() == 'y'
    assert run_module(config_files, params)['changed'] is False


def test_directories_check_mode_writes_nothing(tmp_path, run_module):
    result = run_module(config_files, two_dirs(tmp_path), check_mode=True, diff=True)
    pd0, minio0 = tmp_path / 'pd0' / 'conf', tmp_path / 'minio0' / 'conf'
    assert result['changed'] is True
    assert [(entry['path'], entry['changed'], entry['created_dir']) for entry in result['directories']] == [(str(pd0), True, True), (str(minio0), True, True)]
    assert os.listdir(tmp_path) == []
    assert result['diff'][0] == dict(before=dict(path=str(pd0), state='absent'), after=dict(path=str(pd0), state='directory', mode='0750'))
    assert result['diff'][3] == dict(before=dict(path=str(minio0), state='absent'), after=dict(path=str(minio0), state='directory', mode='0700'))
    assert len(result['diff']) == 6

    run_module(config_files, two_dirs(tmp_path))
    os.chmod(pd0, 0o755)
    result = run_module(config_files, two_dirs(tmp_path, files=[dict(name='minio.env', content='MINIO_BROWSER=on\n')]), check_mode=True)
    assert [(entry['changed'], entry['changed_files']) for entry in result['directories']] == [(True, []), (True, ['minio.env'])]
    assert mode_of(pd0) == 0o755 and (minio0 / 'minio.env').read_text() == MINIO_ENV


@pytest.mark.parametrize('check_mode', [False, True])
def test_directories_secret_content_never_in_result(tmp_path, run_module, check_mode):
    minio0 = tmp_path / 'minio0' / 'conf'
    minio0.mkdir(parents=True)
    (minio0 / 'credentials.env').write_text('PASSWORD=old-%s\n' % SECRET)
    result = run_module(config_files, two_dirs(tmp_path), check_mode=check_mode, diff=True)
    assert result['changed'] is True and SECRET not in json.dumps(result)
    dest = str(minio0 / 'credentials.env')
    entries = [entry for entry in result['diff'] if entry.get('before_header') == dest]
    assert entries == [dict(before_header=dest, after_header=dest,
                            before='(secret file credentials.env: old content not shown)\n',
                            after='(secret file credentials.env: new content not shown)\n')]
    secret_files = result['invocation']['module_args']['directories'][1]['secret_files']
    assert secret_files == [dict(name='credentials.env', content='VALUE_SPECIFIED_IN_NO_LOG_PARAMETER')]
    assert result['invocation']['module_args']['directories'][1]['files'][0]['content'] == MINIO_ENV


def test_directories_empty_list_changes_nothing(run_module):
    result = run_module(config_files, dict(directories=[]), diff=True)
    assert result['changed'] is False and result['directories'] == [] and result['diff'] == []


@pytest.mark.parametrize('extra', [dict(path='/tmp/x'), dict(mode='0750'), dict(files=[]), dict(secret_files=[])])
def test_directories_with_single_directory_options_rejected(tmp_path, run_module, extra):
    result = run_module(config_files, dict(two_dirs(tmp_path), **extra))
    assert result['failed'] is True
    assert result['msg'] == 'parameters are mutually exclusive: directories|%s' % next(iter(extra))
    assert os.listdir(tmp_path) == []


def test_neither_path_nor_directories_rejected(run_module):
    result = run_module(config_files, dict(files=[dict(name='a', content='x')]))
    assert result['failed'] is True and result['msg'] == 'one of the following is required: path, directories'
