"""The operators' browser console: server-rendered pages under `/console`, secure by default.

- A signed, HttpOnly, Secure, SameSite=Strict cookie names a row of `auth_sessions` (kind
  `console`): revocable like any API session, with an absolute lifetime and an idle timeout.
- Every state-changing route sits on a router whose dependency checks a CSRF token, so a new
  form cannot forget it; the login form has its own pre-session token.
- Jinja2 autoescapes every value; the CSP allows scripts and styles from our own static files
  only (no inline code), and pages are never framed or cached.
"""

from tripline_admin.console.app import CONSOLE_CSP, CONSOLE_PREFIX, install_console

__all__ = ["CONSOLE_CSP", "CONSOLE_PREFIX", "install_console"]
