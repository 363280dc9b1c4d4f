"""ARQ jobs: the functions ARQ calls, one per job registry entry, each named as its entry.

The naming rule is by place: a module here holds adapters only (they take ARQ's `ctx`, read the
typed `context(ctx)`, call the logic, log what was done); the logic they call lives in the
domain packages beside this one (`telemetry`, `webhooks`, `alerts`, `trips`, `accounts`,
`maintenance`), takes plain keyword arguments and knows nothing of ARQ.
"""
