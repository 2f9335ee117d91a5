from __future__ import annotations

from django import forms

from evalhub.projects.models import Project, Role


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "task_instructions"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "task_instructions": forms.Textarea(attrs={"rows": 3})}


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
