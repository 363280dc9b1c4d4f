"""The chaos soak (`make soak`, and its 90-second form in `make test`): the fleet drives real
replicas of the API, ingest and the worker while faults are injected for real; then a checker
proves from the fleet's record and the database that nothing was lost, doubled or broken, and a
report (Markdown and a PNG plot) is written under test-artifacts/. docs/soak.md tells more."""
