"""Bearer-token authentication for writes: `Authorization: Bearer $SECRET_TOKEN`."""
import hmac

from django.conf import settings
from rest_framework import authentication, exceptions, permissions


class ApiClient:
    """The caller that holds the shared token (not a Django user)."""

    is_authenticated = True
    is_staff = False
    is_active = True
    pk = None
    username = "api-client"

    def __str__(self) -> str:
        return self.username


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        # Constant-time comparison: the token must not leak through response timing.
        if not hmac.compare_digest(header[1], settings.SECRET_TOKEN.encode()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return ApiClient(), "bearer"

    def authenticate_header(self, request):
        return self.keyword


class HasApiToken(permissions.BasePermission):
    message = "Authentication credentials were not provided: send 'Authorization: Bearer <token>'."

    def has_permission(self, request, view):
        return isinstance(request.user, ApiClient) or bool(request.user and request.user.is_staff)
