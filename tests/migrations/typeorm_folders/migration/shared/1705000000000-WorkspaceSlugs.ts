import { MigrationInterface, QueryRunner } from "typeorm";

// A data migration both databases run: it changes rows, not the schema.
export class WorkspaceSlugs1705000000000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`UPDATE "workspaces" SET "slug" = 'w' || "id" WHERE "slug" IS NULL`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {}
}
