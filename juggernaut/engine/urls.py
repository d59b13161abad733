from django.urls import path

from juggernaut.engine import views

app_name = "engine"
urlpatterns = [
    path("", views.index, name="index"),
    path("tasks/", views.task_list, name="tasks"),
    path("tasks/new/", views.task_create, name="task-create"),
    path("tasks/<int:task_id>/", views.task_detail, name="task"),
    path("tasks/<int:task_id>/priority/", views.task_priority, name="task-priority"),
    path("tasks/<int:task_id>/<slug:action>/", views.task_action, name="task-action"),
    path("workers/<int:worker_id>/", views.worker_detail, name="worker"),
    path("pause/", views.pause, name="pause"),
    path("resume/", views.resume, name="resume"),
]
