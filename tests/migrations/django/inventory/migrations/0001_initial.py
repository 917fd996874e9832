from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.CreateModel(
            name="Organization",
            fields=[("id", models.AutoField(primary_key=True)), ("name", models.TextField())],
        ),
    ]
