from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core import views

PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics_view}


class ProbeMiddleware:
    """Answers the probe paths before host validation, sessions or auth run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
