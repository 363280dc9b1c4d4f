"""The rolling-upgrade rehearsal (`make rehearse`, and its short form in `make test`): real
processes at the previous release under steady traffic, the migration, a rolling upgrade to this
release and a rollback, each replaced replica drained as the chart configures; then a verdict on
what every client saw and what the database and the webhook receiver hold."""
