"""Who is calling: an API client by its key (`Authorization: Bearer <key>`), or staff by their session.

SECRET_TOKEN is the key of the built-in client `default`; every other key is an ApiClientKey (hashed,
revocable, several per client). SECRET_TOKEN is revoked with the client's keys (`api_client revoke --all
default`, which records its value's revocation as a key row labelled SECRET_TOKEN); a new value is a new key.
A client sees and writes only its own orders; staff see all if they hold the permission to."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from clients import selectors
from clients.models import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_NAME

if TYPE_CHECKING:
    # Types only: DRF imports this module while rest_framework.views is still initialising (its
    # DEFAULT_AUTHENTICATION_CLASSES setting), so importing APIView here at run time is a circular import.
    from rest_framework.request import Request
    from rest_framework.views import APIView

# Longer than any key this project issues (8 + 1 + 32) or a sane SECRET_TOKEN: refused before any lookup.
MAX_KEY_LENGTH = 256


class ClientPrincipal:
    """`request.user` for a request made with a client key (not a Django user)."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_active = True

    def __init__(self, client_id: int, name: str) -> None:
        self.client_id = client_id
        self.pk = client_id  # what DRF's throttles and logs key on
        self.username = f"client:{name}"

    def __str__(self) -> str:
        return self.username


class BearerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ClientPrincipal, None] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <key>'.")
        token = header[1]
        if len(token) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid key.")
        # Constant-time comparison: the token must not leak through response timing.
        if hmac.compare_digest(token, settings.SECRET_TOKEN.encode()):
            # Revocable like any key (`api_client revoke --all default`): one indexed lookup of its row.
            if selectors.secret_token_revoked(token=settings.SECRET_TOKEN):
                raise exceptions.AuthenticationFailed("Invalid key.")
            return ClientPrincipal(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_NAME), None
        try:
            key = token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid key.") from None
        client = selectors.client_for_key(key=key)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid key.")
        return ClientPrincipal(client.id, client.name), None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsClientOrStaff(permissions.BasePermission):
    """A client key, or staff holding `staff_permission` when a subclass names one (docs/security.md "Security")."""

    message = "Authentication credentials were not provided: send 'Authorization: Bearer <key>'."
    staff_permission: str | None = None

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.user, ClientPrincipal):
            return True
        if not (request.user and request.user.is_staff):
            return False
        if self.staff_permission is None or request.user.has_perm(self.staff_permission):
            return True
        self.message = f"Staff permission required: {self.staff_permission}."
        return False


# Staff rights by permission (orders/models.py Order.Meta.permissions).
VIEW_EVERY_ORDER = "orders.view_every_order"
CANCEL_ORDER = "orders.cancel_order"


class CanCancelOrders(IsClientOrStaff):
    """A client (its own orders) or staff with the permission to cancel any."""

    staff_permission = CANCEL_ORDER


def client_scope(request: Request) -> int | None:
    """The client whose orders this request may see and write; None for staff (all orders)."""
    user = request.user
    return user.client_id if isinstance(user, ClientPrincipal) else None


def actor_of(request: Any) -> str:
    """Who did it, for an order's history: `client:<name>` or `staff:<username>`."""
    if isinstance(request.user, ClientPrincipal):
        return request.user.username
    return f"staff:{request.user.get_username()}"
