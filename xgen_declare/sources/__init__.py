"""Where manifests come from when they are not a local directory: a git repository.

    spec.py     GitSpec; `git+URL[#REF][//PATH]` and every field checked (SourceError)
    gitcmd.py   the one way to run git: argv, timeout (its process group killed), no prompt, no user or
                system config, only https/http/ssh/file transports, the token in the environment
    verify.py   a commit's SSH signature against allowed_signers
    trees.py    one commit's tree into trees/<commit>, then the atomic `current` symlink swap
    git.py      GitSource.sync(): fetch, resolve, verify, materialise; a SyncResult, never an exception

Imports only errors.py and readers/.
"""
