"""The plugin's Kubernetes transports: one kubeconfig resolver (kubeconfig.py), the light REST path
(rest.py) and the kubernetes-client path (client.py) built from its answer, the session protocols
(api.py), and the errors with the one translator both paths use (errors.py)."""
