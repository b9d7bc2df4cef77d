"""HTTP plumbing shared by the management API (api/) and the OpenAI-compatible router (router/): bind and
token rules, the Host allow-list and body limits (GuardMiddleware), scrubbing of paths from answers."""
