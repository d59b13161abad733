from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from juggernaut import views
from juggernaut.api import api, json_not_found
from juggernaut.features import feature_enabled

urlpatterns = [
    path("", views.overview, name="overview"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("settings/", views.settings_page, name="settings"),
    path("settings/tokens/", views.token_create, name="token-create"),
    path("settings/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("areas/<slug:key>/", views.area, name="area"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/(?P<path>.*)$", json_not_found),
    path("engine/", include("juggernaut.engine.urls")),
]

# Each feature app's pages, mounted only while it is switched on (see juggernaut/features.py).
FEATURE_PAGES = [
    ("routing/", "routing"),
    ("logs/", "logscrawler"),
    ("selfheal/", "selfheal"),
    ("chat/", "chat"),
    ("codehealth/", "codehealth"),
]
urlpatterns += [path(prefix, include(f"{app}.urls")) for prefix, app in FEATURE_PAGES if feature_enabled(app)]
