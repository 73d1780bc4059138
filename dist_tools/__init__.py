"""Release tooling (not shipped): the krew plugin archive and its manifest (build_plugin)."""
