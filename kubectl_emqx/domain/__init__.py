"""The domain shared by the plugin and the operator: pure code, no I/O."""
