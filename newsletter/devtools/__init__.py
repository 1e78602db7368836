"""Tools for developers and demos, not for production: the local SendGrid sandbox, the
demo, previews and Chromium screenshots (the optional `preview` extra)."""
