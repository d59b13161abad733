from django.urls import path

from codehealth import views

app_name = "codehealth"
urlpatterns = [
    path("", views.index, name="index"),
    path("add/", views.repository_add, name="add"),
    path("<int:pk>/", views.repository_detail, name="repository"),
    path("<int:pk>/scan/", views.repository_scan, name="scan"),
    path("findings/<int:pk>/task/", views.finding_task, name="finding-task"),
    path("findings/<int:pk>/dismiss/", views.finding_dismiss, name="finding-dismiss"),
    path("findings/<int:pk>/reopen/", views.finding_reopen, name="finding-reopen"),
]
