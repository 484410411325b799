"""What several test folders share: polling with deadlines, sandboxed interpreters, servers."""
