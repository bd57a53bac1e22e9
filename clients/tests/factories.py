from rest_framework.test import APIClient

from clients import services
from clients.models import ApiClient


def client_with_key(name: str) -> tuple[ApiClient, str]:
    return services.api_client_create(name=name)


def api_client_for(key: str) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http
