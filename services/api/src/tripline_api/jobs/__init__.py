"""User-visible background jobs: `GET /v1/jobs/{job_id}`."""
