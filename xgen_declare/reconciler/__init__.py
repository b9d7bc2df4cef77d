"""The reconciler: observe (records, host, ports) -> plan (pure) -> apply (the one executor), the
daemon loop that runs it, the manifests watcher and the client side of a running daemon."""
