"""Root URLs. Each stage app contributes `urls.py` (pages, namespaced by app) and `api_urls.py` (under /api/)."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

STAGE_APPS = ["projects", "jobs", "datasets", "tuning", "generation", "metrics", "reviews", "arena", "feedback"]


def home(request: HttpRequest) -> HttpResponse:
    return redirect("projects:list" if request.user.is_authenticated else "login")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def _optional(module: str) -> bool:
    return find_spec(module) is not None


urlpatterns: list[URLPattern | URLResolver] = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/auth/", include("rest_framework.urls")),
]
for _app in STAGE_APPS:
    if _optional(f"evalhub.{_app}.urls"):
        urlpatterns.append(path("", include(f"evalhub.{_app}.urls")))
    if _optional(f"evalhub.{_app}.api_urls"):
        urlpatterns.append(path("api/", include(import_module(f"evalhub.{_app}.api_urls").urlpatterns)))
