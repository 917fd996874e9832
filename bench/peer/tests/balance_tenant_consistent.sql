-- Tenant consistency of the balances: a balance's organization is its item's and its location's.
select b."itemId", b."locationId", b."orgId", i."orgId" as item_org, l."orgId" as location_org
  from {{ source('app', 'InventoryBalance') }} b
  join {{ source('app', 'InventoryItem') }} i on i.id = b."itemId"
  join {{ source('app', 'Location') }} l on l.id = b."locationId"
 where b."orgId" <> i."orgId" or b."orgId" <> l."orgId" or i."orgId" <> l."orgId"
