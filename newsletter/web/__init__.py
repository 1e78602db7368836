"""The web process: reader pages and webhooks (`app.py`, `routes/`)."""
