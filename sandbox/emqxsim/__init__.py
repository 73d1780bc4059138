"""EMQX node simulator: the stand-in runtime for EMQX pods in the sandbox.

Pipeline (pure up to the World): pod dict + ConfigMaps/Secrets (podspec.ObjectSource)
-> podspec.ContainerRuntime (kubelet: env, mounts) -> nodespec.NodeSpec (EMQX: identity, config)
-> world.World admits it into a cluster (EMQX's boot rules) -> node.SimNode served by api.NodeHttpServer
on <podIP>:<dashboard port>. kube.py feeds pods in and keeps the Ready condition true to GET /status;
control.py + client.py are the fault-injection and observation API for tests.
"""
