from django.urls import path

from evalhub.projects import api

urlpatterns = [
    path("projects/", api.ProjectViewSet.as_view({"get": "list", "post": "create"}), name="api-project-list"),
    path(
        "projects/<int:project_id>/",
        api.ProjectViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="api-project-detail",
    ),
    path(
        "projects/<int:project_id>/members/",
        api.MembershipViewSet.as_view({"get": "list", "post": "create"}),
        name="api-member-list",
    ),
    path(
        "projects/<int:project_id>/members/<int:pk>/",
        api.MembershipViewSet.as_view({"delete": "destroy"}),
        name="api-member-detail",
    ),
]
