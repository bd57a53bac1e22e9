import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")
django_wsgi_app = get_wsgi_application()

from core.limits import WSGIRequestLimits  # noqa: E402  (needs Django set up)

# Outermost: a body over REQUEST_MAX_BODY_BYTES or slower than REQUEST_BODY_TIMEOUT is refused before
# Django (host check, probes, auth) sees the request.
application = WSGIRequestLimits(django_wsgi_app)
