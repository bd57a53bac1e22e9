"""WSGI entry of the fast API ceiling (bench/settings_ceiling_fast.py), for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_ceiling_fast")
application = get_wsgi_application()
