"""policylink: network inference for robot policies."""

__version__ = "0.1.0"
