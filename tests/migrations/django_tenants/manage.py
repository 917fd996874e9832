#!/usr/bin/env python
"""Our own django-tenants project: `python manage.py migrate_schemas` migrates the shared schema
and every registered tenant's schema of DATABASE_URL."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenant_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
