from django.urls import path

from selfheal import views

app_name = "selfheal"
urlpatterns = [
    path("", views.index, name="index"),
    path("diagnose/", views.diagnose, name="diagnose"),
    path("repair/<slug:name>/preview/", views.repair_preview, name="preview"),
    path("repair/<slug:name>/", views.repair, name="repair"),
]
