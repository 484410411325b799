"""Network plumbing without a policy: certificates, the access-control list, Zenoh settings."""
