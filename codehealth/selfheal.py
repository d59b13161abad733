"""Code health's self-heal check: GitHub reachable, with rate-limit headroom."""

from datetime import datetime

import requests
from django.conf import settings

from codehealth.models import Repository
from juggernaut.healing import Finding, Fix, check
from juggernaut.http import http_session


@check("github")
def github_check(now: datetime) -> list[Finding]:
    """GitHub's API reachable at GITHUB_API_URL, with rate-limit headroom, once a GitHub repository is
    watched (before that nothing needs GitHub, so nothing is asked of it)."""
    base = settings.GITHUB_API_URL.rstrip("/")
    if not base or not Repository.objects.exclude(github_owner="").exists():
        return [
            Finding(
                "github",
                "info",
                "GitHub is not configured.",
                {},
                Fix.manual("/codehealth/", "Watch a GitHub repository on the Code Health page."),
                code="not_configured",
            )
        ]
    try:
        response = http_session(timeout=settings.SELFHEAL_CHECK_TIMEOUT_SECONDS, max_retries=0).get(
            f"{base}/rate_limit"
        )
    except requests.RequestException as exc:
        return [
            Finding(
                "github",
                "critical",
                f"GitHub is unreachable at {base}: {exc.__class__.__name__}.",
                {"base_url": base},
                Fix.manual("GITHUB_API_URL", "Check the URL and the network."),
                code="unreachable",
            )
        ]
    remaining = response.headers.get("X-RateLimit-Remaining")
    if response.status_code >= 500:
        return [
            Finding(
                "github",
                "critical",
                f"GitHub answers {response.status_code}.",
                {"base_url": base},
                Fix.manual("https://www.githubstatus.com", "Wait for GitHub."),
                code="unreachable",
            )
        ]
    if remaining is not None and remaining.isdigit() and int(remaining) < 50:
        return [
            Finding(
                "github",
                "warning",
                f"GitHub rate limit nearly spent ({remaining} left).",
                {"remaining": int(remaining)},
                Fix.manual("GITHUB_TOKEN", "Wait for the reset."),
                code="rate_limit",
            )
        ]
    return []
