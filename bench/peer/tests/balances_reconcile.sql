-- Reconciliation: every (item, location) with movements has a balance equal to their sum;
-- a balance without movements is 0.
with ledger as (
    select "itemId", "locationId", sum(quantity) as total
      from {{ source('app', 'StockMovement') }}
     group by 1, 2
)
select coalesce(b."itemId", l."itemId") as "itemId", coalesce(b."locationId", l."locationId") as "locationId",
       b.quantity, l.total
  from {{ source('app', 'InventoryBalance') }} b
  full join ledger l on l."itemId" = b."itemId" and l."locationId" = b."locationId"
 where b.quantity is distinct from l.total
   and not (l."itemId" is null and b.quantity = 0)
