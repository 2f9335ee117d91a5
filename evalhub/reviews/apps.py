from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "evalhub.reviews"
    label = "reviews"
