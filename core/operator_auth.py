"""Authentication of the operator APIs (orders/dead_letters/apis.py, orders/ops_apis.py): staff, by session or
HTTP Basic, and no state-changing request can be made from another site with either.

A session cookie: DRF's SessionAuthentication enforces Django's CSRF check on unsafe methods (the
admin's dead-letter actions are Django admin forms, under the CSRF middleware).
Basic credentials: a browser caches them and sends them with every request to the origin, a cross-site
form's or a no-cors fetch's included. So an unsafe request authenticated by Basic must also say
`Content-Type: application/json`: another site's page can send that only after a CORS preflight, which
this API never grants (it sends no CORS headers). curl and scripts add the header at no cost.
"""

from typing import Any

from drf_spectacular.authentication import BasicScheme
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.views import APIView

from core.login_guard import login_locked_out_for

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
JSON = "application/json"


class CrossSiteSafeBasicAuthentication(BasicAuthentication):
    def authenticate_credentials(self, userid: str, password: str, request: Request | None = None) -> tuple[Any, Any]:
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            # Refused by the failed-login lockout (core/login_guard.py) before any hash: a 429, not a 401.
            retry_after = login_locked_out_for(request) if request is not None else None
            if retry_after is not None:
                raise exceptions.Throttled(
                    wait=retry_after, detail="Too many failed logins from this address or for this username."
                ) from None
            raise

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)  # None without Basic credentials; 401 for wrong ones
        if result is not None and request.method not in SAFE_METHODS:
            media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
            if media_type != JSON:
                raise exceptions.PermissionDenied(
                    f"Requests that change state with HTTP Basic credentials must be sent with Content-Type: {JSON} "
                    "(a cross-site form cannot send it); or use a staff session with its CSRF token."
                )
        return result


class CrossSiteSafeBasicScheme(BasicScheme):
    """The OpenAPI schema's `basicAuth`, as for DRF's class (drf-spectacular matches the exact class only)."""

    target_class = "core.operator_auth.CrossSiteSafeBasicAuthentication"


class HasStaffPermissions(BasePermission):
    """The view's `required_permissions`, every one (docs/security.md "Security": staff rights by permission). A view
    that names none is refused: being staff alone grants nothing here."""

    message = "Staff permission required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        required = tuple(getattr(view, "required_permissions", ()))
        missing = [perm for perm in required if not request.user.has_perm(perm)]
        if missing or not required:
            self.message = f"Staff permission required: {', '.join(missing) or 'none granted for this endpoint'}."
            return False
        return True


class StaffApi(APIView):
    # Basic first: an anonymous caller gets 401 with a challenge; a logged-in non-staff user gets 403, and
    # so does staff without the view's `required_permissions`.
    # Neither can be used cross-site: Basic POSTs need a JSON content type, session POSTs the CSRF token.
    authentication_classes = [CrossSiteSafeBasicAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser, HasStaffPermissions]
    required_permissions: tuple[str, ...] = ()

    def actor(self) -> str:
        return f"staff:{self.request.user.get_username()}"
