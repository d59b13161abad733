from django import forms
from django.contrib import admin
from django.db import models

from codehealth.checkout import local_path_check
from codehealth.errors import CodehealthError
from codehealth.models import (
    AutoPullRequest,
    CodeFinding,
    CodeHealthReport,
    ContractViolation,
    Repository,
    Scan,
    StaleCodeItem,
)


class RepositoryForm(forms.ModelForm):
    """A local path set here passes the same rules as through the API (``local_path_check``): an
    admin's decision, under CODEHEALTH_LOCAL_ROOTS, registered once."""

    user = None  # the signed-in admin, set by RepositoryAdmin.get_form

    def clean_local_path(self) -> str:
        value = (self.cleaned_data.get("local_path") or "").strip()
        if not value or value == self.instance.local_path:
            return value
        try:
            value = local_path_check(self.user, value)
        except CodehealthError as exc:
            raise forms.ValidationError(exc.message) from exc
        if Repository.objects.filter(local_path=value).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("this local path is registered already")
        return value


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    form = RepositoryForm
    # A schema URL typed without a scheme means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    list_display = [
        "name",
        "github_owner",
        "github_name",
        "local_path",
        "default_branch",
        "scan_every_days",
        "owner",
        "last_scanned_at",
    ]
    search_fields = ["name", "github_owner", "github_name"]
    readonly_fields = ["last_scanned_at", "scan_requested_at", "created_at"]

    def get_changeform_initial_data(self, request):
        """A new repository is the signed-in admin's unless they pick another owner."""
        return {"owner": request.user.pk} | super().get_changeform_initial_data(request)


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    """What each scan found; a record of what happened, so nobody edits it."""

    list_display = [
        "repository",
        "status",
        "score",
        "findings_count",
        "new_count",
        "fixed_count",
        "started_at",
    ]
    list_filter = ["status", "repository"]
    date_hierarchy = "started_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CodeFinding)
class CodeFindingAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "category",
        "path",
        "line",
        "confidence",
        "fixable",
        "repository",
        "fixed_scan",
    ]
    list_filter = ["kind", "fixable", "repository"]
    search_fields = ["name", "path", "reason"]
    readonly_fields = ["fingerprint", "first_scan", "last_scan", "fixed_scan", "task"]


@admin.register(StaleCodeItem)
class StaleCodeItemAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "path", "line", "confidence", "status", "repository"]
    list_filter = ["status", "category", "repository"]
    search_fields = ["name", "path"]
    readonly_fields = ["finding"]


@admin.register(ContractViolation)
class ContractViolationAdmin(admin.ModelAdmin):
    list_display = ["category", "method", "endpoint", "frontend_path", "backend_path", "status", "repository"]
    list_filter = ["status", "category", "repository"]
    readonly_fields = ["finding"]


@admin.register(CodeHealthReport)
class CodeHealthReportAdmin(admin.ModelAdmin):
    list_display = [
        "repository",
        "week_start",
        "score",
        "previous_score",
        "new_count",
        "fixed_count",
        "dependencies_audited",
        "prs_opened",
    ]
    list_filter = ["repository"]


@admin.register(AutoPullRequest)
class AutoPullRequestAdmin(admin.ModelAdmin):
    list_display = ["repository", "number", "title", "status", "branch", "created_at"]
    list_filter = ["status", "repository"]
    readonly_fields = ["number", "url", "branch", "commit_sha", "changes", "body"]
