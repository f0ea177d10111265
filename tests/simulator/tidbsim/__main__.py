"""`python -m tidbsim <binary> <flags>`: play one component the way its real binary starts."""

import importlib
import sys

from .common import UsageError, run_main

# binary name -> module holding main(argv)
BINARIES = {
    "pd-server": "pd",
    "tikv-server": "tikv",
    "tidb-server": "tidb",
    "tiflash": "tiflash",
    "cdc": "ticdc",
    "tici-server": "tici",
    "minio": "minio",
}


def main(argv):
    if not argv or argv[0] not in BINARIES:
        names = ", ".join(sorted(BINARIES))
        print(f"usage: python -m tidbsim <binary> [flags]; binary is one of: {names}", file=sys.stderr)
        return 2
    module = importlib.import_module(f".{BINARIES[argv[0]]}", __package__)
    return run_main(lambda: module.main(argv[1:]))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(exc.code)
