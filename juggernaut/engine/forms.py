"""Forms of the Engine's pages: the task list's search and filters."""

from django import forms
from django.db.models import Q

from juggernaut.engine.models import Status, TaskQuerySet, worker_actor
from juggernaut.engine.sources import source_choices


class TaskFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "title, #id or dedupe key", "type": "search"}),
    )
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *Status.choices])
    kind = forms.CharField(required=False, max_length=100)
    worker = forms.CharField(required=False, max_length=100)
    source = forms.ChoiceField(required=False, choices=lambda: [("", "any source"), *source_choices()])
    attention = forms.BooleanField(required=False, label="Needs attention")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].replace("\x00", "").strip()

    def apply(self, tasks: TaskQuerySet) -> TaskQuerySet:
        data = self.cleaned_data
        if data["q"]:
            text = data["q"]
            match = Q(title__icontains=text) | Q(dedupe_key__icontains=text)
            number = text.removeprefix("#")
            if number.isdigit() and len(number) < 18:
                match |= Q(pk=int(number))
            tasks = tasks.filter(match)
        if data["status"]:
            tasks = tasks.filter(status=data["status"])
        if data["kind"]:
            tasks = tasks.filter(kind=data["kind"].strip())
        if data["worker"]:
            name = data["worker"].strip()
            tasks = tasks.filter(Q(lease_owner__name=name) | Q(events__actor=worker_actor(name))).distinct()
        if data["source"]:
            tasks = tasks.filter(source=data["source"])
        if data["attention"]:
            tasks = tasks.needs_attention()
        return tasks
