import { MigrationInterface, QueryRunner } from "typeorm";

// The same release for MySQL: never applied on PostgreSQL.
export class MysqlWorkspaces1704067200000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `workspaces` (`id` int NOT NULL AUTO_INCREMENT PRIMARY KEY, `slug` varchar(64))");
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP TABLE `workspaces`");
  }
}
