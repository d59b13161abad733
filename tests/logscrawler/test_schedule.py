"""The crawl runs on a django-q2 schedule every LOGS_CRAWL_MINUTES, and says when it has no token."""

from django.core.management import call_command
from django_q.models import Schedule

from logscrawler import tasks
from logscrawler.models import CrawlRun


def test_it_installs_the_crawl_schedule(db, settings):
    call_command("sync_schedules", verbosity=0)
    crawl = Schedule.objects.get(name="hq:logs-crawl")
    assert (crawl.func, crawl.minutes) == ("logscrawler.tasks.logs_crawl", settings.LOGS_CRAWL_MINUTES)
    assert Schedule.objects.filter(name="hq:logs-prune").exists()


def test_it_records_a_skipped_run_without_a_token(db, settings):
    settings.RAILWAY_TOKEN = settings.RAILWAY_API_TOKEN = ""
    assert tasks.logs_crawl() == "skipped"
    assert CrawlRun.objects.get().errors == ["no Railway token: set RAILWAY_TOKEN or RAILWAY_API_TOKEN"]
