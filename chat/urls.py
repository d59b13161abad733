from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("sessions/", views.session_create, name="create"),
    path("sessions/<int:session_id>/", views.session_page, name="session"),
    path("sessions/<int:session_id>/messages/", views.message_send, name="send"),
    path("sessions/<int:session_id>/mode/", views.session_mode, name="mode"),
    path("runs/<int:run_id>/stop/", views.run_stop, name="stop"),
    path("runs/<int:run_id>/approve/", views.run_approve, name="approve"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="resume"),
]
