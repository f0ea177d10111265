# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""The config files of one or more instances, one directory each: validate, plan, diff, write.

The deploy renders every file of an instance on the controller; ``config_files`` writes them in
one module run instead of one ``copy`` per file, and with its ``directories`` option the files
of several instances (all those of one engine host) in one run. Planning reads the directories
and decides what changes; nothing is written until planning has succeeded for every file of
every directory. Secret files are handled like the others, except that their content never
reaches a diff or a message.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile

FILE_MODE = 0o644
SECRET_MODE = 0o600
DIR_MODE = '0750'  # the default of the mode options

_OCTAL = re.compile(r'^[0-7]{1,4}$')


class FilesError(Exception):
    """A state of the directory the module cannot work with; the message holds no file content."""


class Wanted:
    """One file as it should be: name, bytes, mode and whether its content is secret."""

    __slots__ = ('name', 'data', 'mode', 'secret')

    def __init__(self, name, data, mode, secret):
        self.name = name
        self.data = data
        self.mode = mode
        self.secret = secret


class Change:
    """A file that differs: ``action`` is create, update (content, perhaps mode too) or mode (mode only)."""

    __slots__ = ('wanted', 'action', 'before', 'before_mode')

    def __init__(self, wanted, action, before=None, before_mode=None):
        self.wanted = wanted
        self.action = action
        self.before = before  # the old bytes (update), else None
        self.before_mode = before_mode  # the old mode (update, mode), else None


class Plan:
    """What a run changes in ``path``: missing directories, the directory's mode, the files."""

    def __init__(self, path, dir_mode, missing_dirs, dir_before_mode, changes):
        self.path = path
        self.dir_mode = dir_mode
        self.missing_dirs = missing_dirs  # to create, outermost first; path itself is last
        self.dir_before_mode = dir_before_mode  # the mode to repair, else None
        self.changes = changes  # Change list, in input order

    @property
    def created_dir(self):
        return bool(self.missing_dirs)

    @property
    def changed_files(self):
        return [change.wanted.name for change in self.changes]

    @property
    def changed(self):
        return bool(self.missing_dirs or self.dir_before_mode is not None or self.changes)


def parse_mode(value):
    """The permission bits of ``value`` (an int, or an octal string like ``'0750'``); ValueError if it is not one."""
    if isinstance(value, bool):
        raise ValueError('expected an octal mode like \'0750\', got %r' % (value,))
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and _OCTAL.match(value.strip()):
        mode = int(value.strip(), 8)
    else:
        raise ValueError('expected an octal mode like \'0750\', got %r' % (value,))
    if not 0 <= mode <= 0o7777:
        raise ValueError('expected an octal mode like \'0750\', got %r' % (value,))
    return mode


def validate_names(files, secret_files, prefix=''):
    """Return the errors of the ``name`` keys of both lists, each naming its option and the offending name.

    ``prefix`` goes before every option name, such as ``directories[2].``.
    """
    errors = []
    seen = {}
    for option, entries in (('files', files), ('secret_files', secret_files)):
        for index, entry in enumerate(entries or ()):
            where = '%s%s[%d].name' % (prefix, option, index)
            name = entry.get('name')
            if not isinstance(name, str) or name in ('', '.', '..') or '/' in name or '\0' in name:
                errors.append("%s: %r is not a plain file name (no '/', not empty, '.' or '..')" % (where, name))
                continue
            if name in seen:
                errors.append('%s: %r is listed twice (also %s)' % (where, name, seen[name]))
                continue
            seen[name] = where
    return errors


def wanted_files(files, secret_files):
    """The Wanted list of both options, plain files first, each in input order; content is UTF-8 encoded."""
    wanted = [Wanted(entry['name'], _encode(entry['content']), FILE_MODE, False) for entry in files or ()]
    wanted.extend(Wanted(entry['name'], _encode(entry['content']), SECRET_MODE, True) for entry in secret_files or ())
    return wanted


def _encode(content):
    return content.encode('utf-8', 'surrogateescape')


def _missing_dirs(path):
    """The directories to create for ``path``, outermost first; FilesError if ``path`` or an ancestor is not a directory."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        if os.path.lexists(current):
            if current == os.path.abspath(path):
                raise FilesError('path: %s exists and is not a directory' % path)
            raise FilesError('path: %s: %s exists and is not a directory' % (path, current))
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    missing.reverse()
    return missing


def plan(path, dir_mode, wanted):
    """Compare ``wanted`` with the files in ``path``; return a Plan. Reads only, raises FilesError."""
    missing = _missing_dirs(path)
    dir_before_mode = None
    if not missing:
        current = stat.S_IMODE(os.stat(path).st_mode)
        if current != dir_mode:
            dir_before_mode = current
    changes = []
    for item in wanted:
        if missing:
            changes.append(Change(item, 'create'))
            continue
        change = _compare(os.path.join(path, item.name), item)
        if change is not None:
            changes.append(change)
    return Plan(path, dir_mode, missing, dir_before_mode, changes)


def _compare(dest, item):
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return Change(item, 'create')
    if not stat.S_ISREG(st.st_mode):
        raise FilesError('%s: %s exists and is not a regular file' % ('secret_files' if item.secret else 'files', dest))
    mode = stat.S_IMODE(st.st_mode)
    with open(dest, 'rb') as handle:
        before = handle.read()
    if before != item.data:
        return Change(item, 'update', before, mode)
    if mode != item.mode:
        return Change(item, 'mode', None, mode)
    return None


def secret_placeholder(name, which):
    return '(secret file %s: %s content not shown)\n' % (name, which)


def diff(plan):
    """The diff list of a Plan (see the module's RETURN); never holds the content of a secret file."""
    entries = []
    if plan.missing_dirs:
        entries.append(dict(before=dict(path=plan.path, state='absent'),
                            after=dict(path=plan.path, state='directory', mode='%04o' % plan.dir_mode)))
    elif plan.dir_before_mode is not None:
        entries.append(dict(before=dict(path=plan.path, mode='%04o' % plan.dir_before_mode),
                            after=dict(path=plan.path, mode='%04o' % plan.dir_mode)))
    for change in plan.changes:
        item = change.wanted
        dest = os.path.join(plan.path, item.name)
        if change.action in ('create', 'update'):
            if item.secret:
                before = secret_placeholder(item.name, 'old') if change.action == 'update' else ''
                after = secret_placeholder(item.name, 'new')
            else:
                before = change.before.decode('utf-8', 'replace') if change.action == 'update' else ''
                after = item.data.decode('utf-8', 'surrogateescape')
            entries.append(dict(before_header=dest, after_header=dest, before=before, after=after))
        if change.before_mode is not None and change.before_mode != item.mode:
            entries.append(dict(before=dict(path=dest, mode='%04o' % change.before_mode),
                                after=dict(path=dest, mode='%04o' % item.mode)))
    return entries


def apply(plan, atomic_move):
    """Carry out a Plan. ``atomic_move(src, dest)`` is AnsibleModule.atomic_move.

    Returns the names written. On failure raises FilesError whose ``written`` holds the names
    written before it, ``changed`` whether anything was changed before it and ``created_dir``
    whether the directory itself was created before it.
    """
    written = []
    changed = False
    created_dir = False
    try:
        for directory in plan.missing_dirs:
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                # A run for another instance on the same engine host created a shared parent
                # between our plan and now (site.yml prepares every instance at once), or an
                # earlier entry of the same run's directories option did.
                if not os.path.isdir(directory):
                    raise
                if directory != os.path.abspath(plan.path):
                    continue
            changed = True
            created_dir = created_dir or directory == os.path.abspath(plan.path)
            os.chmod(directory, plan.dir_mode)
        if plan.dir_before_mode is not None:
            os.chmod(plan.path, plan.dir_mode)
            changed = True
        for change in plan.changes:
            _apply_change(plan.path, change, atomic_move)
            written.append(change.wanted.name)
            changed = True
    except Exception as exc:  # OSError, or the plain Exception atomic_move raises
        error = FilesError('%s: %s' % (plan.path, exc))
        error.written = written
        error.changed = changed
        error.created_dir = created_dir
        raise error from exc
    return written


def _apply_change(path, change, atomic_move):
    item = change.wanted
    dest = os.path.join(path, item.name)
    if change.before_mode is not None and change.before_mode != item.mode:
        # Before the move: atomic_move copies the mode of the file it replaces, and a secret
        # file must not be readable by others with its new content, not even for a moment.
        os.chmod(dest, item.mode)
    if change.action == 'mode':
        return
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % item.name, suffix='.tmp', dir=path)  # mode 0600
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(item.data)
            os.fchmod(handle.fileno(), item.mode)
        if change.action == 'create':
            # atomic_move sets a new file to 0666 & ~umask after the rename; this umask makes
            # that the file's own mode, so that a secret file is never 0644.
            umask = os.umask(0o777 & ~item.mode)
            try:
                atomic_move(tmp, dest)
            finally:
                os.umask(umask)
        else:
            atomic_move(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    if stat.S_IMODE(os.stat(dest).st_mode) != item.mode:
        os.chmod(dest, item.mode)


def summary(plan):
    """The entry of a Plan in the module's ``directories`` return value."""
    return dict(path=plan.path, changed=plan.changed, changed_files=plan.changed_files, created_dir=plan.created_dir)


def plan_directories(directories):
    """Validate and plan every entry of the ``directories`` option; return the Plans, in input order.

    Each entry is a dict with ``path``, ``mode``, ``files`` and ``secret_files`` as the options of
    the single-directory form. Reads only. Raises FilesError with every error found, each naming
    ``directories[i]``, so that nothing is written in any directory when one of them is wrong:
    names and modes first, then paths listed twice or inside a listed file, then each directory
    as planned (a path that is not a directory, a listed name that is not a regular file).
    """
    errors = []
    modes = []
    seen = {}
    for index, entry in enumerate(directories):
        prefix = 'directories[%d].' % index
        try:
            modes.append(parse_mode(entry.get('mode', DIR_MODE)))
        except ValueError as exc:
            modes.append(None)
            errors.append('%smode: %s' % (prefix, exc))
        errors.extend(validate_names(entry.get('files'), entry.get('secret_files'), prefix))
        key = os.path.abspath(entry['path'])
        if key in seen:
            errors.append('%spath: %r is listed twice (also %spath)' % (prefix, entry['path'], seen[key]))
        else:
            seen[key] = prefix
    if errors:
        raise FilesError('; '.join(errors))
    errors.extend(_paths_inside_files(directories))
    if errors:
        raise FilesError('; '.join(errors))
    plans = []
    for index, (entry, mode) in enumerate(zip(directories, modes)):
        try:
            plans.append(plan(entry['path'], mode, wanted_files(entry.get('files'), entry.get('secret_files'))))
        except FilesError as exc:
            errors.append('directories[%d].%s' % (index, exc))  # exc names its option: path, files or secret_files
        except OSError as exc:
            errors.append('directories[%d]: %s' % (index, exc))
    if errors:
        raise FilesError('; '.join(errors))
    return plans


def _paths_inside_files(directories):
    """Errors for a directory whose path, or one of its parents, is a file listed in another entry."""
    listed = {}
    for index, entry in enumerate(directories):
        base = os.path.abspath(entry['path'])
        for option in ('files', 'secret_files'):
            for position, item in enumerate(entry.get(option) or ()):
                listed.setdefault(os.path.join(base, item['name']), 'directories[%d].%s[%d].name' % (index, option, position))
    errors = []
    for index, entry in enumerate(directories):
        current = os.path.abspath(entry['path'])
        while True:
            if current in listed:
                if current == os.path.abspath(entry['path']):
                    errors.append('directories[%d].path: %s is also listed as a file (%s)' % (index, entry['path'], listed[current]))
                else:
                    errors.append('directories[%d].path: %s: %s is also listed as a file (%s)' % (index, entry['path'], current, listed[current]))
                break
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return errors


def apply_directories(plans, atomic_move):
    """Carry out Plans in order, each with ``apply``; return their summaries.

    On failure raises FilesError naming ``directories[i]`` and what was written before it.
    Its ``directories`` holds the summaries of the directories applied before the failure and,
    last, of the one that failed, with what was written in it; its ``changed`` tells whether
    anything changed. The directories after the failed one are not touched.
    """
    done = []
    for index, each in enumerate(plans):
        try:
            apply(each, atomic_move)
        except FilesError as exc:
            failed = dict(path=each.path, changed=exc.changed, changed_files=exc.written, created_dir=exc.created_dir)
            entries = done + [failed]
            message = 'directories[%d]: %s; %s' % (index, exc, _written_text(entries))
            if index + 1 < len(plans):
                message += '; directories[%d] and later were not touched' % (index + 1)
            error = FilesError(message)
            error.directories = entries
            error.changed = any(entry['changed'] for entry in entries)
            raise error from exc
        done.append(summary(each))
    return done


def _written_text(entries):
    """What the summaries ``entries`` changed, for a failure message; names only, never content."""
    parts = []
    for index, entry in enumerate(entries):
        if not entry['changed']:
            continue
        what = (['directory created'] if entry['created_dir'] else []) + list(entry['changed_files'])
        parts.append('directories[%d] %s (%s)' % (index, entry['path'], ', '.join(what) or 'no file, directory mode or parents only'))
    return 'changed before the failure: ' + ('; '.join(parts) if parts else 'nothing')
