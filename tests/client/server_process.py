"""`policylink serve` as a real child process, for tests that kill it (see tests.support)."""

from tests.support.server_process import REPO, ServerProcess

__all__ = ["REPO", "ServerProcess"]
