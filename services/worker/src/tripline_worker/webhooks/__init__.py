"""Webhook delivery: signed POSTs to users' endpoints, retried with backoff, outcome recorded."""
