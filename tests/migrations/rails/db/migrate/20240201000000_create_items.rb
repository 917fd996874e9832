# A table scoped to its tenant.
class CreateItems < ActiveRecord::Migration[6.1]
  def change
    create_table :items do |t|
      t.references :organization, null: false, foreign_key: true
      t.string :sku, null: false
      t.integer :quantity, null: false, default: 0
    end
  end
end
