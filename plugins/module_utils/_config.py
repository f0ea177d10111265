# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Configuration building blocks, on the controller: TiUP's config merge, TOML, the TiCI settings.

* TiUP's merge semantics (pingcap/tiup pkg/cluster/spec/server_config.go): ``fold_dotted``,
  ``merge_server_config``; and a deterministic TOML encoder, ``to_toml`` (tomlkit);
* the S3 settings TiCI, TiFlash and the changefeed share, checked by one set of rules
  (``s3_problems``, ``s3_settings``);
* the TiCI settings: ``tiflash_tici_config``, ``tici_server_config``, ``tici_tidb_dsn``, and the
  TiCDC sink URI whose files TiCI reads, ``tici_sink_uri``.

The cluster model (_model, _process) and the filters (plugins/filter/tidb_config.py) both use
them. Every function returns new objects and never mutates its inputs. Errors are ConfigError
with a message that names keys and types, never values: the inputs carry S3 keys and passwords.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ansible_collections.tidbops.cluster.plugins.module_utils._dicts import deep_merge

try:
    import tomlkit
except ImportError:
    tomlkit = None

_TOML_INT_MIN = -(2 ** 63)
_TOML_INT_MAX = 2 ** 63 - 1
GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|\u00b5s|ms|s|m|h))+$")
MISSING = object()

S3_KEYS = ("endpoint", "bucket", "prefix", "region", "access_key", "secret_key", "use_path_style")
TICI_KEYS = ("reader_addr", "reader_advertise_addr", "s3", "log_file", "data_dir")
TICI_ROLES = ("meta", "worker")
# S3 bucket names (AWS "Bucket naming rules", which MinIO follows): 3-63 characters of a-z, 0-9,
# dots and hyphens, a letter or digit at both ends, no "..", not an IPv4 address.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^[0-9]+([.][0-9]+){3}$")


class ConfigError(ValueError):
    """Bad input to a config builder; the message names the key and what was expected."""


# ---------------------------------------------------------------------------------------------
# Small helpers

def _dotted(path):
    return ".".join(str(part) for part in path) or "(top level)"


def _type_name(value):
    return "null" if value is None else type(value).__name__


def _plain(value, path, name):
    """Deep-copy ``value`` into builtin types (Ansible hands in tagged and lazy subclasses)."""
    if isinstance(value, Mapping):
        copy = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    "%s: key %r under '%s' must be a string, got %s" % (name, key, _dotted(path), _type_name(key)))
            copy[str(key)] = _plain(item, path + (str(key),), name)
        return copy
    if isinstance(value, (list, tuple)):
        return [_plain(item, path + ("[%d]" % index,), name) for index, item in enumerate(value)]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (datetime.date, datetime.time)):
        return value  # immutable
    raise ConfigError(
        "%s: '%s' has unsupported type %s; expected a mapping, list, string, number, boolean or date"
        % (name, _dotted(path), _type_name(value)))


def _optional_mapping(value, what, name):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("%s: %s must be a mapping (dict), got %s" % (name, what, _type_name(value)))
    return value


# ---------------------------------------------------------------------------------------------
# TiUP merge semantics (pingcap/tiup server_config.go): fold dotted keys, merge, instance wins

def _fold(mapping, path, name):
    folded = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(
                "%s: key %r under '%s' must be a string, got %s" % (name, key, _dotted(path), _type_name(key)))
        parts = tuple(key.split("."))
        if not all(parts):
            raise ConfigError(
                "%s: key '%s' has an empty part; expected names separated by single dots"
                % (name, _dotted(path + (key,))))
        if isinstance(value, Mapping):
            value = _fold(value, path + parts, name)
        else:
            value = _plain(value, path + parts, name)
        _insert(folded, parts, value, path, name)
    return folded


def _not_a_table(value_path, table_path, name):
    return ConfigError(
        "%s: conflicting keys: '%s' is set to a non-table value, but '%s' needs it to be a table"
        % (name, _dotted(value_path), _dotted(table_path)))


def _insert(target, parts, value, path, name):
    """Place ``value`` at ``parts`` below ``target``; two spellings of one key are an error."""
    for index, part in enumerate(parts[:-1]):
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise _not_a_table(path + parts[:index + 1], path + parts, name)
        target = child
    _join(target, parts[-1], value, path + parts[:-1], name)


def _join(target, key, value, path, name):
    if key not in target:
        target[key] = value
        return
    existing = target[key]
    if isinstance(existing, dict) and isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _join(existing, sub_key, sub_value, path + (key,), name)
        return
    table = existing if isinstance(existing, dict) else value
    if isinstance(table, dict) and table:
        raise _not_a_table(path + (key,), path + (key, next(iter(table))), name)
    raise ConfigError(
        "%s: conflicting keys: '%s' is set more than once (nested and dotted spellings of the same key)"
        % (name, _dotted(path + (key,))))


def fold_dotted(config):
    """Fold TiUP-style dotted keys (``log.level``, ``a.b: {c.d: x}``) into nested mappings."""
    return _fold(_optional_mapping(config, "the input", "fold_dotted"), (), "fold_dotted")


def merge_server_config(global_config, instance_config=None):
    """TiUP's MergeConfig: fold both maps, deep-merge, the instance wins, non-maps replace."""
    name = "merge_server_config"
    base = _fold(_optional_mapping(global_config, "global_config", name), (), name)
    override = _fold(_optional_mapping(instance_config, "instance_config", name), (), name)
    return deep_merge(base, override)


# ---------------------------------------------------------------------------------------------
# TOML

def _require_tomlkit(name):
    if tomlkit is None:
        raise ConfigError(
            "%s: the Python library 'tomlkit' is required on the controller; install it with 'pip install tomlkit'" % name)


def _is_array_of_tables(value):
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _toml_value(value, path):
    if value is None:
        raise ConfigError(
            "to_toml: '%s' is null, which TOML cannot represent; remove the key or give it a value" % _dotted(path))
    if isinstance(value, bool):
        return tomlkit.item(value)
    if isinstance(value, int):
        if not _TOML_INT_MIN <= value <= _TOML_INT_MAX:
            raise ConfigError("to_toml: '%s' is outside the 64-bit integer range TOML allows" % _dotted(path))
        return tomlkit.integer(value)
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        for key in sorted(value):
            inline.append(key, _toml_value(value[key], path + (key,)))
        return inline
    if isinstance(value, list):
        array = tomlkit.array()
        for index, item in enumerate(value):
            array.append(_toml_value(item, path + ("[%d]" % index,)))
        return array
    return tomlkit.item(value)  # str, float, date, datetime, time


def _toml_table(mapping, path, table):
    """Fill ``table`` in sorted order: plain values first, then tables, then arrays of tables."""
    keys = sorted(mapping)
    tables = [key for key in keys if isinstance(mapping[key], dict)]
    arrays_of_tables = [key for key in keys if _is_array_of_tables(mapping[key])]
    for key in keys:
        if key not in tables and key not in arrays_of_tables:
            table.add(key, _toml_value(mapping[key], path + (key,)))
    for key in tables:
        value = mapping[key]
        # A table holding only tables needs no header of its own ([a.b] implies [a]).
        only_tables = bool(value) and all(isinstance(v, dict) or _is_array_of_tables(v) for v in value.values())
        table.add(key, _toml_table(value, path + (key,), tomlkit.table(is_super_table=only_tables)))
    for key in arrays_of_tables:
        array = tomlkit.aot()
        for index, item in enumerate(mapping[key]):
            array.append(_toml_table(item, path + ("%s[%d]" % (key, index),), tomlkit.table()))
        table.add(key, array)
    return table


def to_toml(data, header=None):
    """Encode a mapping as deterministic TOML (sorted keys, values before tables)."""
    name = "to_toml"
    _require_tomlkit(name)
    if not isinstance(data, Mapping):
        raise ConfigError("%s: the input must be a mapping (dict), got %s" % (name, _type_name(data)))
    if header is not None and not isinstance(header, str):
        raise ConfigError("%s: header must be a string, got %s" % (name, _type_name(header)))
    document = tomlkit.document()
    if header:
        for line in header.splitlines():
            document.add(tomlkit.comment(line))
        document.add(tomlkit.nl())
    return tomlkit.dumps(_toml_table(_plain(data, (), name), (), document))


# ---------------------------------------------------------------------------------------------
# Input checks for the TiCI filters (messages name the key, never the value)

def _check_keys(mapping, allowed, what, name):
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise ConfigError(
            "%s: unknown key(s) %s in %s; expected only %s" % (name, ", ".join(unknown), what, ", ".join(allowed)))


def _string(mapping, key, what, name, required=True):
    value = mapping.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError("%s: %s.%s is required: expected a non-empty string" % (name, what, key))
        return None
    if not isinstance(value, str):
        raise ConfigError("%s: %s.%s must be a string, got %s" % (name, what, key, _type_name(value)))
    return str(value)


def _host_port(value, what, name):
    if not isinstance(value, str) or not value:
        raise ConfigError("%s: %s must be a 'host:port' string, got %s" % (name, what, _type_name(value)))
    host, _sep, port = value.rpartition(":")
    if "://" in value or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in value:
        raise ConfigError(
            "%s: %s must be 'host:port' without a scheme or path (port 1-65535)" % (name, what))
    return str(value)


def s3_problems(s3, what="s3", require=("endpoint", "bucket", "prefix"), hints=None):
    """Every problem of an S3 settings mapping (tici_s3's vocabulary), as messages; empty when usable.

    ``require`` names the keys that must be non-empty; ``hints`` adds a reason to their message
    (``{"endpoint": "it defaults to the first of minio_servers"}``).
    """
    if not isinstance(s3, Mapping):
        return ["%s must be a mapping with keys %s, got %s" % (what, ", ".join(S3_KEYS), _type_name(s3))]
    hints = hints or {}
    problems = []
    unknown = sorted(str(key) for key in s3 if key not in S3_KEYS)
    if unknown:
        problems.append("unknown key(s) %s in %s; expected only %s" % (", ".join(unknown), what, ", ".join(S3_KEYS)))
    for key in S3_KEYS:
        value = s3.get(key)
        if value is None or value == "":
            if key in require:
                problems.append("%s.%s must be set (%s)" % (what, key, hints[key]) if key in hints
                                else "%s.%s is required: expected a non-empty string" % (what, key))
        elif key == "use_path_style":
            if not isinstance(value, bool):
                problems.append("%s.use_path_style must be a boolean, got %s" % (what, _type_name(value)))
        elif not isinstance(value, str):
            problems.append("%s.%s must be a string, got %s" % (what, key, _type_name(value)))
        elif key == "endpoint" and not re.match(r"^https?://[^/\s]+", value):
            problems.append("%s.endpoint must be an http:// or https:// URL, e.g. http://minio:9000" % what)
        elif key == "bucket" and (not _BUCKET.match(value) or ".." in value or _IPV4.match(value)):
            problems.append("%s.bucket must be an S3 bucket name: 3-63 characters of a-z, 0-9, dots and hyphens, "
                            "starting and ending with a letter or digit" % what)
        elif key == "prefix" and (value.startswith("/") or not value.rstrip("/") or "//" in value.rstrip("/")):
            problems.append("%s.prefix must be a non-empty path inside the bucket without a leading '/' or empty "
                            "segments, e.g. tici_default_prefix" % what)
    return problems


def s3_settings(s3, name, what="s3"):
    """The S3 settings checked by s3_problems (the first problem raises) and normalised: every key
    present (None when not given), the prefix without its trailing slashes."""
    problems = s3_problems(s3, what)
    if problems:
        raise ConfigError("%s: %s" % (name, problems[0]))
    settings = dict((key, s3.get(key) if s3.get(key) != "" else None) for key in S3_KEYS)
    settings = dict((key, str(value) if isinstance(value, str) else value) for key, value in settings.items())
    settings["prefix"] = settings["prefix"].rstrip("/")
    return settings


def _bool_option(value, option, name):
    if not isinstance(value, bool):
        raise ConfigError("%s: %s must be a boolean, got %s" % (name, option, _type_name(value)))
    return value


# ---------------------------------------------------------------------------------------------
# Generated settings: kebab-case key (2026+), optional snake_case alias, value

def _s3_pairs(base, s3):
    """The [s3] keys TiCI reads, in both spellings, for one settings table."""
    pairs = (
        ("endpoint", "endpoint"), ("bucket", "bucket"), ("prefix", "prefix"), ("region", "region"),
        ("access-key", "access_key"), ("secret-key", "secret_key"), ("use-path-style", "use_path_style"),
    )
    source = {"access-key": "access_key", "secret-key": "secret_key", "use-path-style": "use_path_style"}
    for kebab, snake in pairs:
        value = s3[source.get(kebab, kebab)]
        if value is not None:
            yield base + (kebab,), base + (snake,), value


def lookup(config, path):
    """The value at ``path`` (a tuple of keys) in nested mappings, or MISSING."""
    for part in path:
        if not isinstance(config, dict) or part not in config:
            return MISSING
        config = config[part]
    return config


def _place(config, path, value, name):
    for index, part in enumerate(path[:-1]):
        config = config.setdefault(part, {})
        if not isinstance(config, dict):
            raise ConfigError(
                "%s: the user config sets '%s' to a non-table value, but '%s' must go below it"
                % (name, _dotted(path[:index + 1]), _dotted(path)))
    config[path[-1]] = value


def _apply_settings(user_config, settings, legacy_aliases, name):
    """Add generated settings to a folded user config without overriding the user.

    A value the user gave under either spelling is the value for both spellings, so nothing
    generated contradicts it. The snake_case alias is written only with legacy_aliases.
    """
    config = _plain(user_config, (), name)
    for kebab, snake, generated in settings:
        spellings = (kebab,) if snake == kebab else (kebab, snake)
        given = [value for value in (lookup(user_config, path) for path in spellings) if value is not MISSING]
        value = given[0] if given else generated
        for path in spellings if legacy_aliases else (kebab,):
            if lookup(user_config, path) is MISSING:
                _place(config, path, _plain(value, path, name), name)
    return config


# ---------------------------------------------------------------------------------------------
# TiCI filters

def tiflash_tici_config(tiflash_config, tici, legacy_aliases=False):
    """TiFlash config with the [tici.*] sections the embedded TiCI reader needs."""
    name = "tiflash_tici_config"
    user_config = _fold(_optional_mapping(tiflash_config, "tiflash_config", name), (), name)
    _bool_option(legacy_aliases, "legacy_aliases", name)
    if not isinstance(tici, Mapping):
        raise ConfigError(
            "%s: tici must be a mapping with keys %s, got %s" % (name, ", ".join(TICI_KEYS), _type_name(tici)))
    _check_keys(tici, TICI_KEYS, "tici", name)
    s3 = s3_settings(tici.get("s3"), name, "tici.s3")
    settings = [
        (("tici", "reader-node", "addr"), ("tici", "reader_node", "addr"),
         _host_port(tici.get("reader_addr"), "tici.reader_addr", name)),
        (("tici", "reader-node", "advertise-addr"), ("tici", "reader_node", "advertise_addr"),
         _host_port(tici.get("reader_advertise_addr"), "tici.reader_advertise_addr", name)),
    ]
    settings.extend(_s3_pairs(("tici", "s3"), s3))
    log_file = _string(tici, "log_file", "tici", name, required=False)
    if log_file:
        settings.append((("tici", "logger", "filename"),) * 2 + (log_file,))
    data_dir = _string(tici, "data_dir", "tici", name, required=False)
    if data_dir:
        # No snake_case alias: pre-2026 readers used a different section ([tici.frag_reader]).
        settings.append((("tici", "storage", "data-dir"),) * 2 + (data_dir,))
    return _apply_settings(user_config, settings, legacy_aliases, name)


def tici_server_config(role, s3=None, pd_addrs=None, tidb_dsns=None, user_config=None, legacy_aliases=False):
    """Config for tici-server meta or worker: [s3], [server] pd-addr and, for meta, [tidb-server] dsns."""
    name = "tici_server_config"
    if role not in TICI_ROLES:
        raise ConfigError("%s: role must be one of %s" % (name, ", ".join(TICI_ROLES)))
    folded = _fold(_optional_mapping(user_config, "user_config", name), (), name)
    _bool_option(legacy_aliases, "legacy_aliases", name)
    s3 = s3_settings(s3, name)
    if isinstance(pd_addrs, str):
        pd_addrs = pd_addrs.split(",")
    if not isinstance(pd_addrs, (list, tuple)) or not pd_addrs:
        raise ConfigError("%s: pd_addrs must be a non-empty list of 'host:port' strings" % name)
    pd_addr = ",".join(_host_port(addr, "pd_addrs[%d]" % index, name) for index, addr in enumerate(pd_addrs))
    settings = list(_s3_pairs(("s3",), s3))
    settings.append((("server", "pd-addr"), ("server", "pd_addr"), pd_addr))
    if role == "meta":
        if not isinstance(tidb_dsns, (list, tuple)) or not tidb_dsns:
            raise ConfigError(
                "%s: tidb_dsns must be a non-empty list of 'mysql://user[:password]@host:port' strings for role meta" % name)
        for index, dsn in enumerate(tidb_dsns):
            if not isinstance(dsn, str) or not dsn.startswith("mysql://"):
                raise ConfigError(
                    "%s: tidb_dsns[%d] must be a 'mysql://user[:password]@host:port' string "
                    "(build it with tidbops.cluster.tici_tidb_dsn)" % (name, index))
        settings.append((("tidb-server", "dsns"), ("tidb_server", "dsns"), [str(dsn) for dsn in tidb_dsns]))
    elif tidb_dsns:
        raise ConfigError("%s: tidb_dsns applies to role meta only, not %s" % (name, role))
    return _apply_settings(folded, settings, legacy_aliases, name)


def tici_tidb_dsn(host_port, user, password=None):
    """The DSN tici-meta uses to reach TiDB: mysql://user[:password]@host:port, parts URL-encoded."""
    name = "tici_tidb_dsn"
    _host_port(host_port, "host_port", name)
    if not isinstance(user, str) or not user:
        raise ConfigError("%s: user must be a non-empty string" % name)
    if password is not None and not isinstance(password, str):
        raise ConfigError("%s: password must be a string, got %s" % (name, _type_name(password)))
    credentials = quote(str(user), safe="")
    if password:
        credentials += ":" + quote(str(password), safe="")
    return "mysql://%s@%s" % (credentials, host_port)


def tici_sink_uri(s3, flush_interval=None):
    """The TiCDC sink URI whose files TiCI reads: s3://<bucket>/<prefix>/cdc?protocol=canal-json&..."""
    name = "tici_sink_uri"
    s3 = s3_settings(s3, name)
    params = [
        ("protocol", "canal-json"),
        ("enable-tidb-extension", "true"),
        ("output-row-key", "true"),
        ("use-table-id-as-path", "true"),
        ("endpoint", s3["endpoint"]),
    ]
    if s3["access_key"] is not None:
        params.append(("access-key", s3["access_key"]))
    if s3["secret_key"] is not None:
        params.append(("secret-access-key", s3["secret_key"]))
    if s3["region"] is not None:
        params.append(("region", s3["region"]))
    if s3["use_path_style"] is not None:
        params.append(("force-path-style", "true" if s3["use_path_style"] else "false"))
    if flush_interval is not None:
        if not isinstance(flush_interval, str) or not GO_DURATION.match(flush_interval):
            raise ConfigError("%s: flush_interval must be a duration string such as '5s' or '500ms'" % name)
        params.append(("flush-interval", str(flush_interval)))
    # quote (not quote_plus): Go decodes '+' in a query as a space, so it must travel as %2B.
    query = urlencode(params, quote_via=quote, safe="")
    return "s3://%s/%s/cdc?%s" % (quote(s3["bucket"], safe=""), quote(s3["prefix"], safe="/"), query)


def plain(value, name):
    """A deep copy of ``value`` in builtin types (Ansible hands in tagged and lazy subclasses)."""
    return _plain(value, (), name)
