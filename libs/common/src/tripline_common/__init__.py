"""Tripline's shared library, in floors: each imports only the floors below it.

- `platform`: settings, logging, request IDs, metrics, Sentry, the error shape;
- `messaging`: the job queue and its registry, pub/sub, webhook signatures;
- `data`: sessions and pools, tables (`data.models`), cache, audit, tracked job rows;
- `security`: tokens and sessions, API keys, passwords, rate limits, egress guard;
- `web`: the app factory, dependencies, middleware, pagination, idempotency.

Import public names from a floor's front door (`from tripline_common.data import
unit_of_work`); a module path is for internals a test pokes at, and for the library's own
modules, which import each other by path (a front door imports its floor's modules, so a module
importing its own floor's door would be a cycle). `tests/test_import_graph.py` holds these
rules.

`migrations/` stays beside the floors, not in one: it is a tool with its own console entry
point (`tripline-migrate`), named by the images, the chart and the Tiltfile, and it may use
every floor.
"""
