# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Names, modes, plans, diffs and writes of the config files of one instance, or of several (directories)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tidbops.cluster.plugins.module_utils._files import (
    SECRET_MODE, FilesError, apply, apply_directories, diff, parse_mode, plan, plan_directories, summary, validate_names, wanted_files,
)

SECRET = 'hunter2-but-longer'


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def entry(name, content='x\n'):
    return dict(name=name, content=content)


@pytest.fixture
def atomic_move():
    """AnsibleModule.atomic_move of a real module object, as the module passes it."""
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    return module.atomic_move


def test_valid_names():
    assert validate_names([entry('pd.toml'), entry('.hidden'), entry('a..b')], [entry('tls.key')]) == []
    assert validate_names([], []) == [] and validate_names(None, None) == []


def test_invalid_names_name_option_and_index():
    errors = validate_names([entry('ok'), entry('a/b'), entry(''), entry('/abs')],
                            [entry('..'), entry('.'), entry('ok'), entry('nul\0'), entry('twice'), entry('twice')])
    assert errors == [
        "files[1].name: 'a/b' is not a plain file name (no '/', not empty, '.' or '..')",
        "files[2].name: '' is not a plain file name (no '/', not empty, '.' or '..')",
        "files[3].name: '/abs' is not a plain file name (no '/', not empty, '.' or '..')",
        "secret_files[0].name: '..' is not a plain file name (no '/', not empty, '.' or '..')",
        "secret_files[1].name: '.' is not a plain file name (no '/', not empty, '.' or '..')",
        "secret_files[2].name: 'ok' is listed twice (also files[0].name)",
        "secret_files[3].name: 'nul\\x00' is not a plain file name (no '/', not empty, '.' or '..')",
        "secret_files[5].name: 'twice' is listed twice (also secret_files[4].name)",
    ]


@pytest.mark.parametrize('value, expected', [('0750', 0o750), ('750', 0o750), ('0700', 0o700), ('2750', 0o2750), (0o750, 0o750), (' 0755 ', 0o755)])
def test_parse_mode(value, expected):
    assert parse_mode(value) == expected


@pytest.mark.parametrize('value', ['u=rwx,g=rx', '0o750', '08', '', '17777', 0o17777, -1, True, None, 7.5])
def test_parse_mode_rejects(value):
    with pytest.raises(ValueError, match='octal mode'):
        parse_mode(value)


def test_wanted_files_order_modes_and_bytes():
    wanted = wanted_files([entry('a', 'é\n')], [entry('s', SECRET)])
    assert [(w.name, w.data, w.mode, w.secret) for w in wanted] == [('a', 'é\n'.encode('utf-8'), 0o644, False), ('s', SECRET.encode(), 0o600, True)]


def test_plan_missing_directory(tmp_path):
    path = str(tmp_path / 'a' / 'b')
    result = plan(path, 0o750, wanted_files([entry('f')], [entry('s', SECRET)]))
    assert result.missing_dirs == [str(tmp_path / 'a'), path]
    assert result.created_dir and result.changed and result.changed_files == ['f', 's']
    assert [change.action for change in result.changes] == ['create', 'create']
    assert not (tmp_path / 'a').exists()


def test_plan_compares_bytes_and_modes(tmp_path):
    (tmp_path / 'same').write_bytes(b'same\n')
    (tmp_path / 'other').write_bytes(b'old\n')
    (tmp_path / 'drift').write_bytes(b'drift\n')
    os.chmod(tmp_path, 0o750)
    for name in ('same', 'other'):
        os.chmod(tmp_path / name, 0o644)
    os.chmod(tmp_path / 'drift', 0o640)
    result = plan(str(tmp_path), 0o750, wanted_files([entry('same', 'same\n'), entry('other', 'new\n'), entry('drift', 'drift\n'), entry('new')], []))
    assert not result.created_dir and result.dir_before_mode is None
    assert [(c.wanted.name, c.action, c.before, c.before_mode) for c in result.changes] == [
        ('other', 'update', b'old\n', 0o644), ('drift', 'mode', None, 0o640), ('new', 'create', None, None)]


def test_plan_unchanged(tmp_path):
    os.chmod(tmp_path, 0o750)
    (tmp_path / 'f').write_text('x\n')
    os.chmod(tmp_path / 'f', 0o644)
    result = plan(str(tmp_path), 0o750, wanted_files([entry('f')], []))
    assert not result.changed and result.changed_files == [] and diff(result) == []


def test_plan_errors(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(FilesError, match='^path: .*/file exists and is not a directory$'):
        plan(str(tmp_path / 'file'), 0o750, [])
    with pytest.raises(FilesError, match='^path: .*/file/sub: .*/file exists and is not a directory$'):
        plan(str(tmp_path / 'file' / 'sub'), 0o750, [])
    (tmp_path / 'dir').mkdir()
    os.symlink(tmp_path / 'file', tmp_path / 'link')
    for name, option in (('dir', 'files'), ('link', 'secret_files')):
        with pytest.raises(FilesError, match='^%s: .*/%s exists and is not a regular file$' % (option, name)):
            plan(str(tmp_path), 0o750, wanted_files([entry(name)] if option == 'files' else [], [entry(name)] if option == 'secret_files' else []))


def test_diff_never_holds_secret_content(tmp_path):
    (tmp_path / 's').write_text('old ' + SECRET)
    (tmp_path / 'p').write_text('old plain\n')
    os.chmod(tmp_path / 's', 0o640)
    os.chmod(tmp_path, 0o700)
    result = plan(str(tmp_path), 0o750, wanted_files([entry('p', 'new plain\n')], [entry('s', 'new ' + SECRET), entry('t', SECRET)]))
    entries = diff(result)
    assert SECRET not in json.dumps(entries)
    s, t = str(tmp_path / 's'), str(tmp_path / 't')
    assert entries == [
        dict(before=dict(path=str(tmp_path), mode='0700'), after=dict(path=str(tmp_path), mode='0750')),
        dict(before_header=str(tmp_path / 'p'), after_header=str(tmp_path / 'p'), before='old plain\n', after='new plain\n'),
        dict(before_header=s, after_header=s, before='(secret file s: old content not shown)\n', after='(secret file s: new content not shown)\n'),
        dict(before=dict(path=s, mode='0640'), after=dict(path=s, mode='0600')),
        dict(before_header=t, after_header=t, before='', after='(secret file t: new content not shown)\n'),
    ]


def test_apply_writes_and_repairs(tmp_path, atomic_move):
    path = tmp_path / 'a' / 'conf'
    wanted = wanted_files([entry('p', 'plain\n'), entry('u', 'ünïcode\n')], [entry('s', SECRET)])
    assert apply(plan(str(path), 0o750, wanted), atomic_move) == ['p', 'u', 's']
    assert mode_of(tmp_path / 'a') == 0o750 and mode_of(path) == 0o750
    assert (path / 'p').read_bytes() == b'plain\n' and (path / 'u').read_bytes() == 'ünïcode\n'.encode('utf-8')
    assert (path / 's').read_text() == SECRET
    assert (mode_of(path / 'p'), mode_of(path / 'u'), mode_of(path / 's')) == (0o644, 0o644, 0o600)
    assert sorted(os.listdir(path)) == ['p', 's', 'u']

    os.chmod(path / 's', 0o666)
    (path / 'p').write_text('edited by hand\n')
    again = plan(str(path), 0o750, wanted)
    assert again.changed_files == ['p', 's']
    assert apply(again, atomic_move) == ['p', 's']
    assert (path / 'p').read_text() == 'plain\n' and mode_of(path / 's') == 0o600
    assert not plan(str(path), 0o750, wanted).changed


def test_secret_file_is_never_readable_by_others(tmp_path, atomic_move):
    """Whenever the secret content moves into place, the file has mode 0600 and so has the file it replaces."""
    seen = []

    def watching_move(src, dest):
        seen.append((mode_of(src), mode_of(dest) if os.path.exists(dest) else None))
        atomic_move(src, dest)
        seen.append((None, mode_of(dest)))

    previous = os.umask(0o022)
    try:
        apply(plan(str(tmp_path), 0o750, wanted_files([], [entry('s', SECRET)])), watching_move)
        os.chmod(tmp_path / 's', 0o644)
        apply(plan(str(tmp_path), 0o750, wanted_files([], [entry('s', 'other ' + SECRET)])), watching_move)
        assert os.umask(previous) == 0o022
    finally:
        os.umask(previous)
    assert seen == [(SECRET_MODE, None), (None, SECRET_MODE), (SECRET_MODE, SECRET_MODE), (None, SECRET_MODE)]
    assert (tmp_path / 's').read_text() == 'other ' + SECRET


def test_apply_failure_reports_what_was_written(tmp_path, atomic_move):
    calls = []

    def failing_move(src, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise Exception("Could not replace '%s'" % dest)
        atomic_move(src, dest)

    wanted = wanted_files([entry('a'), entry('b'), entry('c')], [])
    with pytest.raises(FilesError) as raised:
        apply(plan(str(tmp_path), 0o750, wanted), failing_move)
    assert raised.value.written == ['a'] and raised.value.changed is True
    assert "Could not replace '%s/b'" % tmp_path in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == ['a']  # the temporary file of b is removed


def test_apply_when_a_sibling_run_created_a_shared_parent(tmp_path, atomic_move):
    """site.yml prepares every instance at once: two runs plan the same missing parent."""
    root = tmp_path / 'configs' / 'cluster'
    first = plan(str(root / 'pd0'), 0o750, wanted_files([entry('pd.toml')], []))
    second = plan(str(root / 'tikv0'), 0o750, wanted_files([entry('tikv.toml')], []))
    assert str(root) in first.missing_dirs and str(root) in second.missing_dirs
    assert apply(first, atomic_move) == ['pd.toml']
    # Without the tolerance this raised "[Errno 17] File exists" for the shared parent.
    assert apply(second, atomic_move) == ['tikv.toml']
    assert (root / 'tikv0' / 'tikv.toml').read_text() == 'x\n' and mode_of(root / 'tikv0') == 0o750


def test_apply_still_fails_when_a_parent_became_a_file(tmp_path, atomic_move):
    planned = plan(str(tmp_path / 'a' / 'b'), 0o750, wanted_files([entry('f')], []))
    (tmp_path / 'a').write_text('not a directory')
    with pytest.raises(FilesError, match='File exists'):
        apply(planned, atomic_move)


def test_validate_names_prefix():
    assert validate_names([entry('a'), entry('a/b')], [entry('a')], 'directories[2].') == [
        "directories[2].files[1].name: 'a/b' is not a plain file name (no '/', not empty, '.' or '..')",
        "directories[2].secret_files[0].name: 'a' is listed twice (also directories[2].files[0].name)",
    ]


def directory(path, files=(), secret_files=(), mode='0750'):
    return dict(path=str(path), mode=mode, files=[entry(name) for name in files], secret_files=[entry(name, SECRET) for name in secret_files])


def test_plan_directories_in_input_order(tmp_path):
    (tmp_path / 'b').mkdir(mode=0o750)
    os.chmod(tmp_path / 'b', 0o750)
    plans = plan_directories([directory(tmp_path / 'a', ['f'], ['s'], mode='0700'), directory(tmp_path / 'b'), dict(path=str(tmp_path / 'c'))])
    assert [(p.path, p.dir_mode, p.changed_files, p.created_dir, p.changed) for p in plans] == [
        (str(tmp_path / 'a'), 0o700, ['f', 's'], True, True),
        (str(tmp_path / 'b'), 0o750, [], False, False),
        (str(tmp_path / 'c'), 0o750, [], True, True),  # mode, files and secret_files may be left out
    ]
    assert [summary(p) for p in plans][:2] == [
        dict(path=str(tmp_path / 'a'), changed=True, changed_files=['f', 's'], created_dir=True),
        dict(path=str(tmp_path / 'b'), changed=False, changed_files=[], created_dir=False),
    ]
    assert os.listdir(tmp_path) == ['b']
    assert plan_directories([]) == []


def test_plan_directories_collects_static_errors_first(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(FilesError) as raised:
        plan_directories([
            directory(tmp_path / 'file'),  # not a directory: not reported while names are wrong
            directory(tmp_path / 'x', ['ok', '..'], mode='u=rwx'),
            directory(str(tmp_path / 'x') + '/./', ['ok']),
            directory(tmp_path / 'y', [], ['ok', 'ok']),
        ])
    assert str(raised.value).split('; ') == [
        "directories[1].mode: expected an octal mode like '0750', got 'u=rwx'",
        "directories[1].files[1].name: '..' is not a plain file name (no '/', not empty, '.' or '..')",
        "directories[2].path: '%s/x/./' is listed twice (also directories[1].path)" % tmp_path,
        "directories[3].secret_files[1].name: 'ok' is listed twice (also directories[3].secret_files[0].name)",
    ]


def test_plan_directories_collects_plan_errors(tmp_path):
    (tmp_path / 'file').write_text('')
    (tmp_path / 'd' / 'sub').mkdir(parents=True)
    with pytest.raises(FilesError) as raised:
        plan_directories([directory(tmp_path / 'fine', ['f']), directory(tmp_path / 'file' / 'conf'), directory(tmp_path / 'd', [], ['sub'])])
    assert str(raised.value).split('; ') == [
        'directories[1].path: %s/file/conf: %s/file exists and is not a directory' % (tmp_path, tmp_path),
        'directories[2].secret_files: %s/d/sub exists and is not a regular file' % tmp_path,
    ]


def test_plan_directories_path_inside_a_listed_file(tmp_path):
    with pytest.raises(FilesError) as raised:
        plan_directories([directory(tmp_path / 'a' / 'b'), directory(tmp_path / 'a', ['b'], ['c']), directory(tmp_path / 'a' / 'c' / 'd')])
    assert str(raised.value).split('; ') == [
        'directories[0].path: %s/a/b is also listed as a file (directories[1].files[0].name)' % tmp_path,
        'directories[2].path: %s/a/c/d: %s/a/c is also listed as a file (directories[1].secret_files[0].name)' % (tmp_path, tmp_path),
    ]


def test_apply_directories(tmp_path, atomic_move):
    plans = plan_directories([directory(tmp_path / 'a', ['f'], ['s'], mode='0700'), directory(tmp_path / 'a' / 'b', ['g'])])
    assert apply_directories(plans, atomic_move) == [
        dict(path=str(tmp_path / 'a'), changed=True, changed_files=['f', 's'], created_dir=True),
        dict(path=str(tmp_path / 'a' / 'b'), changed=True, changed_files=['g'], created_dir=True),
    ]
    assert (mode_of(tmp_path / 'a'), mode_of(tmp_path / 'a' / 'b')) == (0o700, 0o750)
    assert (mode_of(tmp_path / 'a' / 's'), (tmp_path / 'a' / 's').read_text()) == (0o600, SECRET)
    assert not any(p.changed for p in plan_directories([directory(tmp_path / 'a', ['f'], ['s'], mode='0700'), directory(tmp_path / 'a' / 'b', ['g'])]))


def test_apply_directories_failure_reports_what_was_written(tmp_path, atomic_move):
    (tmp_path / 'b').mkdir()
    os.chmod(tmp_path / 'b', 0o750)
    (tmp_path / 'b' / 'same').write_text('x\n')
    os.chmod(tmp_path / 'b' / 'same', 0o644)
    calls = []

    def failing_move(src, dest):
        calls.append(dest)
        if len(calls) == 4:
            raise Exception("Could not replace '%s'" % dest)
        atomic_move(src, dest)

    plans = plan_directories([directory(tmp_path / 'a', ['f'], ['s']), directory(tmp_path / 'b', ['same']),
                              directory(tmp_path / 'c', ['g', 'h', 'i']), directory(tmp_path / 'd', ['j'])])
    with pytest.raises(FilesError) as raised:
        apply_directories(plans, failing_move)
    error = raised.value
    assert error.changed is True
    assert error.directories == [
        dict(path=str(tmp_path / 'a'), changed=True, changed_files=['f', 's'], created_dir=True),
        dict(path=str(tmp_path / 'b'), changed=False, changed_files=[], created_dir=False),
        dict(path=str(tmp_path / 'c'), changed=True, changed_files=['g'], created_dir=True),
    ]
    assert str(error) == (
        "directories[2]: {t}/c: Could not replace '{t}/c/h'; "
        "changed before the failure: directories[0] {t}/a (directory created, f, s); directories[2] {t}/c (directory created, g); "
        "directories[3] and later were not touched").format(t=tmp_path)
    assert SECRET not in str(error)
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c'] and sorted(os.listdir(tmp_path / 'c')) == ['g']


def test_apply_directories_failure_before_anything_changed(tmp_path):
    def failing_move(src, dest):
        raise Exception('no space left')

    os.chmod(tmp_path, 0o750)
    plans = plan_directories([directory(tmp_path, ['f'])])
    with pytest.raises(FilesError) as raised:
        apply_directories(plans, failing_move)
    assert str(raised.value) == 'directories[0]: %s: no space left; changed before the failure: nothing' % tmp_path
    assert raised.value.changed is False
    assert raised.value.directories == [dict(path=str(tmp_path), changed=False, changed_files=[], created_dir=False)]
