from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from evalhub.core.api import ProjectScopedMixin
from evalhub.projects import services
from evalhub.projects.access import project_get_for_user, projects_for_user
from evalhub.projects.models import Membership, Project, Role


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "description", "task_instructions", "created_at", "role"]
        read_only_fields = ["id", "created_at", "role"]

    def get_role(self, project: Project) -> str | None:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(project.pk)


class ProjectViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Projects you belong to. Anyone signed in can create one and becomes its lead."""

    serializer_class = ProjectSerializer
    lookup_url_kwarg = "project_id"
    queryset = Project.objects.none()

    def get_queryset(self) -> QuerySet[Project]:
        return projects_for_user(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if self.request.user.is_authenticated:
            context["roles"] = dict(Membership.objects.filter(user=self.request.user).values_list("project_id", "role"))
        return context

    def get_object(self) -> Project:
        write = self.request.method not in ("GET", "HEAD", "OPTIONS")
        access = project_get_for_user(self.request.user, self.kwargs["project_id"], min_role=Role.LEAD if write else Role.ANNOTATOR)
        return access.project

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(created_by=request.user, **serializer.validated_data)
        context = {**self.get_serializer_context(), "roles": {project.pk: Role.LEAD}}
        return Response(ProjectSerializer(project, context=context).data, status=status.HTTP_201_CREATED)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "joined_at"]
        read_only_fields = ["id", "joined_at"]


class MembershipViewSet(ProjectScopedMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Members of a project and their roles. Leads manage them."""

    serializer_class = MembershipSerializer
    min_role = Role.LEAD
    queryset = Membership.objects.none()

    def get_queryset(self) -> QuerySet[Membership]:
        return Membership.objects.filter(project=self.access.project).select_related("user")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set(
            project=self.access.project,
            username=serializer.validated_data["user"]["username"],
            role=serializer.validated_data["role"],
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.membership_remove(project=self.access.project, membership_id=int(kwargs["pk"]))
        return Response(status=status.HTTP_204_NO_CONTENT)
