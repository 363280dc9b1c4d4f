"""Webhooks: URLs of yours that receive alerts as signed POSTs from the worker."""
