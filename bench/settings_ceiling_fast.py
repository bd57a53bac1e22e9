"""The "fastest way this stack allows" API ceiling: the bench's bare one-row DRF insert
(bench.ceiling_app.views.CeilingInsertApi, the same view as the same-server ceiling) with nothing else
around it. Served by gunicorn, sync workers x (2 x cores + 1) (bench/run.py starts it through
bench/wsgi_ceiling_fast.py).

Standalone on purpose (it does not import the product's settings): no middleware at all, only the apps the
view needs, DRF with the bearer-token authentication and the JSON parser/renderer only, and one
persistent PostgreSQL connection per sync worker (CONN_MAX_AGE, no pool: a sync worker serves one
request at a time, so a kept connection is the cheapest there is). Same database, table and token as the
product's processes (DATABASE_URL, SECRET_TOKEN from the bench's environment).
"""

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="bench-ceiling-fast")
SECRET_TOKEN = env.str("SECRET_TOKEN")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_api_key",
    "clients",
    "bench.ceiling_app",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.ceiling_app.urls_fast"
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 600
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clients.auth.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
