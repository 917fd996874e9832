import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.AutoField(primary_key=True)),
                ("quantity", models.IntegerField(default=0)),
                ("org", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="inventory.organization")),
            ],
        ),
    ]
