"""The image's static files storage (DJANGO_STATIC_MANIFEST): WhiteNoise's hashed, compressed files,
with the imports between ES modules rewritten to hashed names too. Without that, the live page's
hashed entry (orders/static/orders/live/main.js) would import its modules by their plain names, which
are cached for a minute only, so a page loaded across a deploy could mix two versions' modules."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
