"""The plugin's Kubernetes transports: the light REST path, the kubernetes-client path, errors."""
