"""What TiKV and the TiFlash proxy check about their host at start: open files and disk space.

Open files (tikv/tikv components/server/src/common.rs `check_system_config`, and
components/tikv_util/src/config.rs `check_max_open_fds`; the TiFlash proxy, pingcap/tidb-engine-ext
proxy_components/proxy_server/src/run.rs, runs the same check): expected = 1000 +
rocksdb.max-open-files (twice when Titan is on) + raftdb.max-open-files. Below that soft limit the
process raises its soft limit to exactly the expectation (and the hard one if it must); when the
kernel refuses, it exits with "the maximum number of open file descriptors is too small".

Reserved space (tikv/tikv components/server/src/common.rs `init_fs`, `calculate_reserved_space`,
`DiskUsageChecker::inspect`; components/file_system/src/lib.rs `reserve_space_for_recover`):
reserved = 0 when storage.reserve-space is 0, else max(5% of the disk capacity, the setting); at
start `<data-dir>/space_placeholder_file` is removed and recreated at reserved/5 bytes with
posix_fallocate when more than `reserved` is available. Disk status: available <= reserved/2 is
AlreadyFull, <= reserved AlmostFull, else Normal.
"""

import os
import re
import resource

from . import common

RESERVED_OPEN_FDS = 1000
DEFAULT_MAX_OPEN_FILES = 40960
PLACEHOLDER = "space_placeholder_file"
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
          "P": 1 << 50, "PB": 1 << 50, "PIB": 1 << 50}


def get_path(config, dotted, default=None):
    """config["a"]["b"]["c"] for "a.b.c", or default."""
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config:
            return default
        config = config[part]
    return config


def parse_size(value, what):
    """A TiKV ReadableSize ("5GB", "0MB", "1KB", "512MiB", or a number of bytes) -> bytes (binary units)."""
    if isinstance(value, bool):
        raise common.UsageError(f"[FATAL] invalid configuration: {what}: invalid size {value!r}", 1)
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise common.UsageError(f"[FATAL] invalid configuration: {what}: invalid size {value!r}", 1)
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def bytes_size(size):
    """PD's typeutil.ByteSize in JSON (docker/go-units BytesSize): "300GiB", "49.09GiB", "0B"."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    size = float(size)
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.4g}{units[index]}"


# ---------------------------------------------------------------- open files

def expected_open_fds(config, titan_default):
    """1000 + rocksdb.max-open-files (x2 with Titan) + raftdb.max-open-files, from a TiKV-style config."""
    rocksdb = get_path(config, "rocksdb.max-open-files", DEFAULT_MAX_OPEN_FILES)
    raftdb = get_path(config, "raftdb.max-open-files", DEFAULT_MAX_OPEN_FILES)
    titan = get_path(config, "rocksdb.titan.enabled")
    if titan is None:
        titan = titan_default
    return RESERVED_OPEN_FDS + int(rocksdb) * (2 if titan else 1) + int(raftdb)


def tikv_titan_default(config):
    """TiKV turns Titan on for a new cluster unless storage.enable-ttl (optional_default_cfg_adjust_with)."""
    return not get_path(config, "storage.enable-ttl", False)


def check_max_open_fds(expect, log):
    """tikv_util::config::check_max_open_fds: raise the soft limit to `expect`, or fail like TiKV."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= expect:
        return
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= expect else expect
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (expect, new_hard))
    except (OSError, ValueError):
        raise common.UsageError("[FATAL] the maximum number of open file descriptors is too small,"
                                f" got {soft}, expect greater or equal to {expect}", 1) from None
    log(f"raised the open files limit from {soft} to {expect} (hard {new_hard})")


# ---------------------------------------------------------------- disk space

def disk_stats(path):
    """(capacity, available) in bytes of the file system holding path."""
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def reserved_space(capacity, setting):
    """calculate_reserved_space: 0 when the setting is 0, else max(5% of capacity, setting)."""
    if setting == 0:
        return 0
    return max(capacity * 5 // 100, setting)


def disk_status(available, reserved):
    """DiskUsageChecker: AlreadyFull at <= reserved/2, AlmostFull at <= reserved (Normal without a reserve)."""
    if reserved == 0:
        return "Normal"
    if available <= reserved // 2:
        return "AlreadyFull"
    if available <= reserved:
        return "AlmostFull"
    return "Normal"


def _used(data_dir):
    """Bytes of the files the simulator keeps at the top of the data dir (placeholder, marker)."""
    total = 0
    try:
        entries = list(os.scandir(data_dir))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            pass
    return total


class Disk:
    """The reserve-space logic of one data dir, and the store statistics sent to PD."""

    def __init__(self, runtime, data_dir, reserve_setting, capacity_setting=0):
        self.rt = runtime
        self.data_dir = data_dir
        self.setting = reserve_setting
        self.capacity_setting = capacity_setting
        self.reserved = 0
        self.status = "Normal"

    def capacity(self):
        disk, _available = disk_stats(self.data_dir)
        return min(disk, self.capacity_setting) if self.capacity_setting else disk

    def init(self):
        """At start: the reserve, and the placeholder file recreated at reserved/5 when there is room."""
        os.makedirs(self.data_dir, exist_ok=True)
        capacity = self.capacity()
        self.reserved = reserved_space(capacity, self.setting)
        path = os.path.join(self.data_dir, PLACEHOLDER)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.rt.log(f"failed to remove space holder on starting: {exc}")
        if self.reserved == 0:
            self.rt.log("storage.reserve-space is 0: no space placeholder, disk status not checked")
            return
        _disk, available = disk_stats(self.data_dir)
        if available > self.reserved:
            size = self.reserved // 5
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                if size:
                    os.posix_fallocate(fd, 0, size)
                os.fsync(fd)
            except OSError as exc:
                raise common.UsageError(f"[FATAL] Failed to reserve space for recovery: {exc}.", 1) from None
            finally:
                os.close(fd)
            self.rt.log(f"reserved {self.reserved} bytes; space placeholder {path} holds {size} bytes")
        else:
            self.rt.log(f"no enough disk space left to create the place holder file (available {available},"
                        f" reserved {self.reserved})")
        self.inspect()

    def inspect(self):
        """Capacity, available and used bytes; updates (and logs) the disk status."""
        capacity = self.capacity()
        _disk, fs_available = disk_stats(self.data_dir)
        used = _used(self.data_dir)
        available = max(0, min(capacity - used, fs_available))
        status = disk_status(available, self.reserved)
        if status != self.status:
            self.rt.log(f"disk usage {self.status}->{status} (available {available} bytes, reserved {self.reserved},"
                        f" capacity {capacity})")
            self.status = status
        return {"capacity": capacity, "available": available, "used_size": used, "disk_status": status}
