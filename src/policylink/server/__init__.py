"""The GPU-side process: one pre-warmed policy, many robot sessions, one inference worker.

The request path, one module per step: `manifest` (configuration) → `core` (the entry point every
transport calls) → `session` / `session_registry` (latest-only mailboxes) → `scheduler` →
`worker` (decode, policy, reply) → `metrics`, `audit`, `capture`, `health`. `app` wires them
together with the Zenoh surface; `serving_modes` decides whether sessions may share the policy.
"""
