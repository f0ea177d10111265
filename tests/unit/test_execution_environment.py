# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""execution-environment.yml: `ansible-builder create` makes its build context from the tarball `make dist`
builds (building the image needs a registry, which this machine lacks); galaxy.yml lists every collection
the roles and plugins call."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def galaxy():
    return yaml.safe_load((TOP / 'galaxy.yml').read_text(encoding='utf-8'))


def test_ansible_builder_creates_the_context_from_the_built_tarball(tmp_path):
    info = galaxy()
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(tmp_path / 'dist'), str(TOP)],
                   check=True, capture_output=True, text=True)
    tarball = '%s-%s-%s.tar.gz' % (info['namespace'], info['name'], info['version'])
    assert (tmp_path / 'dist' / tarball).is_file()
    for name in ('execution-environment.yml', 'requirements.txt'):
        shutil.copy(TOP / name, tmp_path / name)
    # The file's name follows the container runtime found on the machine unless it is given.
    run = subprocess.run([str(BIN / 'ansible-builder'), 'create', '-f', 'execution-environment.yml', '--context', 'context',
                          '--output-filename', 'Containerfile'],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    context = tmp_path / 'context'
    containerfile = (context / 'Containerfile').read_text(encoding='utf-8')
    assert 'FROM base AS galaxy' in containerfile and 'COPY _build /build' in containerfile
    assert re.search(r'ansible-galaxy collection install .*-r requirements.yml', containerfile)
    # The tarball, under the name galaxy.yml's version gives it, where the galaxy stage installs it from.
    assert yaml.safe_load((context / '_build' / 'requirements.yml').read_text(encoding='utf-8')) == {
        'collections': [{'name': 'dist/' + tarball, 'type': 'file'}]}
    assert (context / '_build' / 'dist' / tarball).is_file()
    assert (context / '_build' / 'requirements.txt').read_text(encoding='utf-8') == (TOP / 'requirements.txt').read_text(encoding='utf-8')
    assert 'openssh-clients' in (context / '_build' / 'bindep.txt').read_text(encoding='utf-8')
    assert 'ansible-core==2.19.13' in containerfile


def test_galaxy_yml_depends_on_every_collection_the_code_calls():
    used = set()
    for path in list((TOP / 'roles').rglob('*.yml')) + list((TOP / 'playbooks').rglob('*.yml')) + list((TOP / 'plugins').rglob('*.py')):
        text = path.read_text(encoding='utf-8')
        # `from ansible.utils.display import ...` is ansible-core's own package, not the ansible.utils collection.
        used.update(re.findall(r'(?<!from )\b(community\.[a-z_]+|containers\.podman|kubernetes\.core|amazon\.aws|ansible\.(?:posix|utils))\.[a-z_]+',
                               text))
    assert used and used <= set(galaxy()['dependencies']), sorted(used - set(galaxy()['dependencies']))
