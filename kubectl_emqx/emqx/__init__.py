"""The EMQX REST API client, shared by the operator and the plugin."""
