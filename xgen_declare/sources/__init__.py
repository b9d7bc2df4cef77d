"""Where manifests come from when they are not a local directory: a git repository.

    spec.py     GitSpec; `git+URL[#REF][//PATH]` and every field checked (SourceError)
    gitcmd.py   the one way to run git: argv, timeout (its process group killed), no prompt, no user or
                system config, only https/http/ssh/file transports, the token in the environment
    verify.py   a commit's SSH signature against allowed_signers
    trees.py    one commit's tree into trees/<commit>, then the atomic `current` symlink swap
    history.py  does the fetched commit descend from the current one (a force push is refused by default)
    git.py      GitSource.sync() / pin() / unpin(): fetch, resolve, verify, materialise, check, switch
    stopped.py  a fetch stopped at its size bound is not repeated while the ref names the same commit
    results.py  SyncResult and Refusal (the cause of a refusal, as a type)
    gc.py       `git gc` of repo.git on a schedule; its last result in STATE/source/last_gc
    state.py    STATE/source/pin and last_poll (atomic write, bounded read), the source's flock
    poller.py   Poller.poll_once() -> PollResult; interval, back-off, the last attempt
    webhook.py  receive(headers, body, secret): GitHub / Gitea / GitLab webhooks -> poll now, or a refusal

Imports only errors.py and readers/ (the manifest check comes in as a callable, `git.Check`).
"""
