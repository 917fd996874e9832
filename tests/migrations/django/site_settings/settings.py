"""The database from DATABASE_URL (a socket folder may come as ?host=)."""
import os
from urllib.parse import parse_qs, urlsplit

_url = urlsplit(os.environ["DATABASE_URL"])
_query = parse_qs(_url.query)

SECRET_KEY = "only-for-migrating"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "inventory"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _query.get("host", [_url.hostname or ""])[0],
        "PORT": str(_url.port or ""),
    }
}
