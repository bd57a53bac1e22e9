"""The Django admin site (mounted by orders_project/urls.py) is for staff only: every page and the login."""

import pytest
from django.contrib.auth.models import User

ADMIN_PAGES = [
    "/admin/",
    "/admin/orders/order/",
    "/admin/orders/deadletter/",
    "/admin/orders/product/",
    "/admin/auth/user/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_refuses_anonymous_and_non_staff(client, path):
    assert client.get(path).status_code == 302
    User.objects.create_user("bob", password="pw-bob")
    client.login(username="bob", password="pw-bob")
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_admin_login_refuses_a_non_staff_user(client):
    User.objects.create_user("bob", password="pw-bob")
    response = client.post("/admin/login/?next=/admin/", {"username": "bob", "password": "pw-bob", "next": "/admin/"})
    assert response.status_code == 200  # the form again, with an error; no redirect into the admin
    assert "staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302
