from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from juggernaut.models import SCOPES, ApiToken, Event, EventTopic

admin.site.site_header = "Juggernaut HQ"
admin.site.site_title = "Juggernaut HQ admin"
admin.site.index_title = "Administration"
admin.site.site_url = "/"


class AppendOnlyAdmin(admin.ModelAdmin):
    """Logs written only by the system: readable here, never added to, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in SCOPES], widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(min_value=1, max_value=3650, required=False, help_text="Expiry in days.")

    class Meta:
        model = ApiToken
        fields = ["name", "user", "scopes"]

    def clean(self):
        cleaned = super().clean()
        user = cleaned.get("user")
        if "admin" in cleaned.get("scopes", []) and user is not None and not user.is_superuser:
            raise forms.ValidationError("Only an admin (superuser) may hold a token with the 'admin' scope.")
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scopes", "status", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "user", "scopes", "days"]
        return ["name", "user", "scopes", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, raw = ApiToken.generate(
            name=form.cleaned_data["name"],
            user=form.cleaned_data["user"],
            scopes=form.cleaned_data["scopes"],
            days=form.cleaned_data.get("days"),
        )
        obj.prefix, obj.key_hash, obj.scopes, obj.expires_at = (
            token.prefix,
            token.key_hash,
            token.scopes,
            token.expires_at,
        )
        obj.save()
        messages.warning(request, f"Copy the token now, it will not be shown again: {raw}")

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {count} token(s).")


@admin.register(Event)
class EventAdmin(AppendOnlyAdmin):
    list_display = ["topic", "seq", "type", "ts", "correlation_id"]
    list_filter = ["topic", "type"]
    search_fields = ["topic", "type"]
    date_hierarchy = "ts"


@admin.register(EventTopic)
class EventTopicAdmin(AppendOnlyAdmin):
    list_display = ["topic", "last_seq"]
    search_fields = ["topic"]
