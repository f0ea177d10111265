# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""A test module for tidbops.cluster.run_module: it crashes before it answers."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    AnsibleModule(argument_spec={})
    raise RuntimeError('the boom module blew up')


if __name__ == '__main__':
    main()
