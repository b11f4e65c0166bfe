"""The HTTP dialects. Each module parses its requests, calls the services and renders replies and errors;
no business rule lives here."""
