# -*- coding: utf-8 -*-
# Copyright: tidbops.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters that build TiDB, TiFlash and TiCI configuration on the controller.

The work happens in module_utils/_config.py, which the cluster model uses too; these filters give
playbooks the same functions and turn its errors into filter errors:

* TiUP's config merge (``fold_dotted``, ``merge_server_config``) and a TOML encoder (``to_toml``);
* the TiCI settings (``tiflash_tici_config``, ``tici_server_config``, ``tici_tidb_dsn``) and the
  TiCDC sink URI that feeds TiCI (``tici_sink_uri``);
* ``mask_secrets`` for printing any of the above.

Each filter is documented in plugins/filter/<name>.yml. Error messages name keys and types, never
values, because the inputs carry S3 keys and passwords.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.module_utils import _config
from ansible_collections.tidbops.cluster.plugins.module_utils._secrets import mask_data


def _filter(function):
    """``function`` with its ConfigError raised as an AnsibleFilterError (same message)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _config.ConfigError as error:
            raise AnsibleFilterError(str(error)) from None
    return wrapper


fold_dotted = _filter(_config.fold_dotted)
merge_server_config = _filter(_config.merge_server_config)
to_toml = _filter(_config.to_toml)
tiflash_tici_config = _filter(_config.tiflash_tici_config)
tici_server_config = _filter(_config.tici_server_config)
tici_tidb_dsn = _filter(_config.tici_tidb_dsn)
tici_sink_uri = _filter(_config.tici_sink_uri)


@_filter
def mask_secrets(data):
    """Copy of ``data`` fit for output: secret-named keys and URI credentials masked (module_utils._secrets)."""
    return mask_data(_config.plain(data, "mask_secrets"))


class FilterModule:
    """TiDB/TiCI configuration filters."""

    def filters(self):
        return {
            "fold_dotted": fold_dotted,
            "merge_server_config": merge_server_config,
            "to_toml": to_toml,
            "tiflash_tici_config": tiflash_tici_config,
            "tici_server_config": tici_server_config,
            "tici_tidb_dsn": tici_tidb_dsn,
            "tici_sink_uri": tici_sink_uri,
            "mask_secrets": mask_secrets,
        }
