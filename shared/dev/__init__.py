"""The embedded engines `tribe up` and the test suite run when no engine URL is set (see ``stack.EmbeddedStack``)."""
