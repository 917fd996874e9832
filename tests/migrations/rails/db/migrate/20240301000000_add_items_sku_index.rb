# A SKU is unique within its tenant.
class AddItemsSkuIndex < ActiveRecord::Migration[6.1]
  def change
    add_index :items, [:organization_id, :sku], unique: true
  end
end
