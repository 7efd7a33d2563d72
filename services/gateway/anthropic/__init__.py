"""The Claude Managed Agents API, served under /anthropic as a view over loopd's own objects.

An agent version is a loopd agent version, a session is a run with the same id, and a session's events
are a projection of the run's log. Requests and answers follow the wire of the official SDK's
`client.beta` resources; loopd-only fields travel under `x_loopd`.
"""
