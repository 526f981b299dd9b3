"""The web console's templates, static files and its session cookie (see `web/routes.py`)."""
