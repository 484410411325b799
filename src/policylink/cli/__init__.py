"""The `policylink` command."""
