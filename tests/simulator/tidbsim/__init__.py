"""tidbsim: a protocol simulator of TiDB components for tests. Not TiDB."""
