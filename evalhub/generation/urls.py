from django.urls import path

from evalhub.generation import views

app_name = "generation"
urlpatterns = [
    path("p/<int:project_id>/generation/", views.run_list, name="list"),
    path("p/<int:project_id>/generation/<int:run_id>/", views.run_detail, name="detail"),
    path("p/<int:project_id>/generation/<int:run_id>/outputs/<int:output_id>/", views.output_detail, name="output"),
]
