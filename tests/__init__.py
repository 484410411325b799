"""policylink test suite; a package so subprocesses can import test-only policies."""
