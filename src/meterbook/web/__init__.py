"""The web console at ``/ui``: server-rendered pages over the domain services, signed in with an organization key.

A caller like ``api/``: it reads through the services and renders templates; no rule lives here.
"""

from meterbook.web.pages import install
from meterbook.web.render import render_error

__all__ = ["install", "render_error"]
