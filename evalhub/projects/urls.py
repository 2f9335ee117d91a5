from django.urls import path

from evalhub.projects import views

app_name = "projects"
urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("p/<int:project_id>/", views.project_detail, name="detail"),
    path("p/<int:project_id>/members/", views.project_members, name="members"),
    path("p/<int:project_id>/members/<int:membership_id>/remove/", views.project_member_remove, name="member-remove"),
]
