"""A django-tenants site: the registry (customers) in the shared schema, the inventory in each
tenant's schema; the database from DATABASE_URL (a socket folder may come as ?host=)."""
import os
from urllib.parse import parse_qs, urlsplit

_url = urlsplit(os.environ["DATABASE_URL"])
_query = parse_qs(_url.query)

SECRET_KEY = "only-for-migrating"
USE_TZ = True
SHARED_APPS = ["django_tenants", "django.contrib.contenttypes", "customers"]
TENANT_APPS = ["inventory"]
INSTALLED_APPS = SHARED_APPS + TENANT_APPS
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _query.get("host", [_url.hostname or ""])[0],
        "PORT": str(_url.port or ""),
    }
}
