-- Local development seed (`supabase db reset`): nothing but a marker that the schema is
-- ready. WatchDog creates its own rows; to see a caught regression locally, run
-- `watchdog demo`, or `watchdog simulate --scenario error_spike --out /tmp/s` and post the
-- files to the server (docs/api.md).
SELECT 1;
