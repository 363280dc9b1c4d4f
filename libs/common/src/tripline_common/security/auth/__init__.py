"""Authentication and authorisation shared by the apps: JWTs tied to revocable sessions, roles."""
