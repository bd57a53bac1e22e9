"""The product's settings plus the bench's ceiling app (a bare DRF insert view) and its URL.

Used by every process the bench starts, so the product endpoints and the ceiling are served by the
same server with the same settings. orders_project/urls.py is untouched: this module points
ROOT_URLCONF at bench/ceiling_app/urls.py, which adds one path and includes the product's URLs.
"""

from orders_project.settings import *  # noqa: F403
from orders_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.ceiling_app"]
ROOT_URLCONF = "bench.ceiling_app.urls"
