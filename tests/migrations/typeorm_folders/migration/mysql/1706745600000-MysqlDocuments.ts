import { MigrationInterface, QueryRunner } from "typeorm";

export class MysqlDocuments1706745600000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "CREATE TABLE `documents` (`id` int NOT NULL AUTO_INCREMENT PRIMARY KEY, `workspace_id` int NOT NULL, `title` text NOT NULL)",
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP TABLE `documents`");
  }
}
