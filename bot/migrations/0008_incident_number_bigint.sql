-- PagerDuty's incident number is an integer with no documented bound; an `integer` column failed the INSERT of an
-- incident numbered past 2^31 on every attempt, and every later event of that incident waited behind it. A
-- number past even a bigint is stored as NULL (the snapshot keeps it; handlers/incidents.py::_storable_number).
ALTER TABLE incidents ALTER COLUMN number TYPE bigint;
