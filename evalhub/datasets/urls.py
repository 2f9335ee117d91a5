from django.urls import path

from evalhub.datasets import views

app_name = "datasets"
urlpatterns = [
    path("p/<int:project_id>/data/", views.dataset_list, name="list"),
]
