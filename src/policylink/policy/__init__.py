"""Policies the server can serve: the `Policy` protocol, built-in models, adapters."""

from policylink.policy.base import ChunkBatch, Policy, PolicySpec, Processor, Sample

__all__ = ["ChunkBatch", "Policy", "PolicySpec", "Processor", "Sample"]
