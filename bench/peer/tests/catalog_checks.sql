-- What the catalog proves: tenant columns NOT NULL, validated foreign keys, no invalid index,
-- the balance trigger present and enabled.
select 'nullable tenant column' as problem, c.relname::text as name
  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public' and a.attname = 'orgId' and not a.attnotnull
   and c.relname in ('User', 'Location', 'InventoryItem', 'StockMovement', 'InventoryBalance')
union all
select 'unvalidated constraint', con.conname::text
  from pg_constraint con join pg_namespace n on n.oid = con.connamespace
 where n.nspname = 'public' and not con.convalidated
union all
select 'invalid index', ic.relname::text
  from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace
 where n.nspname = 'public' and not (i.indisvalid and i.indisready)
union all
select 'balance trigger missing or disabled', 'stock_movement_balance'
 where not exists (select 1 from pg_trigger t
                    where t.tgrelid = '"public"."StockMovement"'::regclass
                      and t.tgname = 'stock_movement_balance' and t.tgenabled <> 'D')
