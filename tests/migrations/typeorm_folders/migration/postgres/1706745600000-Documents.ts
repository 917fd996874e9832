import { MigrationInterface, QueryRunner } from "typeorm";

export class Documents1706745600000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "documents" ("id" SERIAL PRIMARY KEY, "workspace_id" integer NOT NULL REFERENCES "workspaces" ("id"), "title" text NOT NULL)`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "documents"`);
  }
}
