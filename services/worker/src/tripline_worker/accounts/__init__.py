"""Account mail: the messages of sign-up and password reset, and their SMTP delivery."""
