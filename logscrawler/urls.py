from django.urls import path

from logscrawler import views

app_name = "logs"
urlpatterns = [
    path("", views.index, name="index"),
    path("services/", views.service_add, name="service-add"),
    path("fingerprints/<int:pk>/", views.fingerprint_detail, name="fingerprint"),
    path("fingerprints/<int:pk>/<slug:action>/", views.fingerprint_action, name="fingerprint-action"),
]
