from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = False  # the schemas are made by migrate_schemas, as a deploy does


class Domain(DomainMixin):
    pass
