from django.urls import path

from routing import views

app_name = "routing"
urlpatterns = [
    path("", views.index, name="index"),
    path("policies/<slug:mode>/", views.policy_edit, name="policy-edit"),
    path("budgets/", views.budget_edit, name="budget-edit"),
    path("catalog/sync/", views.catalog_sync, name="catalog-sync"),
    path("key/check/", views.key_check, name="key-check"),
]
