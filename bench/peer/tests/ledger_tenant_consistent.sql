-- Tenant consistency of the ledger: a movement's organization is its item's and its location's.
select m.id, m."orgId", i."orgId" as item_org, l."orgId" as location_org
  from {{ source('app', 'StockMovement') }} m
  join {{ source('app', 'InventoryItem') }} i on i.id = m."itemId"
  join {{ source('app', 'Location') }} l on l.id = m."locationId"
 where m."orgId" <> i."orgId" or m."orgId" <> l."orgId" or i."orgId" <> l."orgId"
