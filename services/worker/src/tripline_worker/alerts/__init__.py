"""Alert rules (pure), raising alerts (stored once, published, handed to webhooks), lost signal."""
